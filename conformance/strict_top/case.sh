# strict_top: with strict_stack_check = true, a thread running inside a function being replaced
# (its top frame: the instruction pointer in the body, no return address into it) also keeps the
# process from being patched until it has left; then the same run patches it.
run() {
    library_start libstricttop.so "strict_stack_check = true"
    publish_hotpatch strict_top-1 1 libstricttop.so patch.so --replace answer=answer_fixed --replace spin_until=spin_until_fixed
    ONCE_DEADLINE=3s agent_once
    [ "$ONCE_STATUS" -eq 1 ] || fail "with a thread running inside spin_until(), strict --once exited $ONCE_STATUS, not 1 (hotpatch pending): $(last_agent_problem)"
    summary_says "0 patched, 1 pending"
    stays p UNPATCHED 0.5
    feed p leave
    printed p LEFT
    expect p UNPATCHED
    apply_then_revert p strict_top-1
}
