# strict_stack: with strict_stack_check = true the agent refuses to patch while a thread's stack
# holds a return address into a function being replaced (busy, retried until --deadline, process
# untouched), and patches once that thread has left it; reverted by the daemon in strict mode.
run() {
    case_init "strict_stack_check = true"
    cc_lib libstrict.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lstrict
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
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
