# strict_stack: with strict_stack_check = true the agent refuses to patch while a thread's stack
# holds a return address into a function being replaced (busy, retried until --deadline, process
# untouched), and patches once that thread has left it; reverted by the daemon in strict mode.
run() {
    library_start libstrict.so "strict_stack_check = true"
    publish_hotpatch strict_stack-1 1 libstrict.so patch.so --replace answer=answer_fixed --replace stuck=stuck_fixed
    ONCE_DEADLINE=3s agent_once
    [ "$ONCE_STATUS" -eq 1 ] || fail "with a thread inside stuck(), strict --once exited $ONCE_STATUS, not 1 (hotpatch pending): $(last_agent_problem)"
    summary_says "0 patched, 1 pending"
    stays p UNPATCHED 0.5
    feed p leave
    printed p LEFT
    expect p UNPATCHED
    apply_then_revert p strict_stack-1
}
