# many_processes: 1,000 processes mapping the library are all patched by one --once run and all
# reverted by the daemon.
count=1000

run() {
    case_init
    cc_lib libmany.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lmany
    cc_patch patch.so "$SRC/patch.c"
    : >states.log
    start p ./prog "$count" "$CW/states.log"
    expect p READY 60
    all_children UNPATCHED 60
    publish_hotpatch many_processes-1 1 libmany.so patch.so --replace answer=answer_fixed
    local started
    started=$(now_ms)
    apply_once
    note "--once took $(secs_since "$started") for $count processes"
    # The children and their parent.
    summary_says "$((count + 1)) patched, 0 pending, 0 unpatchable"
    all_children PATCHED 30
    revert_via_daemon many_processes-1
    all_children UNPATCHED 60
    daemon_stop
}

# all_children STATE SECONDS: waits until each of the $count children's last state is STATE.
all_children() {
    local started now
    started=$(now_ms)
    while :; do
        grep -q ' BAD$' states.log && fail "a child misbehaved: $(grep -m 1 ' BAD$' states.log)"
        now=$(awk -v want="$1" '{ state[$1] = $2 } END { n = 0; for (p in state) if (state[p] == want) n++; print n }' states.log)
        [ "$now" -ge "$count" ] && { note "$now children $1"; return 0; }
        kill -0 "$PID_p" 2>/dev/null || fail "the parent of the children exited"
        [ $(($(now_ms) - started)) -lt $(($2 * 1000)) ] || fail "$now of $count children $1 after $2 s"
        sleep 0.2
    done
}
