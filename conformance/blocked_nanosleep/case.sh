# blocked_nanosleep: the only thread sleeps in nanosleep(2) while it is patched and reverted; the
# sleep is restarted for the time left, never cut short or failed.
run() {
    library_start libblockedsleep.so
    publish_hotpatch blocked_nanosleep-1 1 libblockedsleep.so patch.so --replace answer=answer_fixed
    blocked_in p 230
    apply_once
    expect p PATCHED 5
    blocked_in p 230
    revert_via_daemon blocked_nanosleep-1
    expect p UNPATCHED 5
    daemon_stop
    # Two more whole sleeps: none cut short.
    sleep 2.2
    expect p UNPATCHED 1
}
