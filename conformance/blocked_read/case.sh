# blocked_read: the only thread is blocked in read(2) while it is patched and reverted; the read
# restarts and returns the line written afterwards.
run() {
    case_init
    cc_lib libblockedread.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lblockedread
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch blocked_read-1 1 libblockedread.so patch.so --replace answer=answer_fixed
    blocked_in p 0
    apply_once
    # Still in the same read: nothing printed until a line comes.
    blocked_in p 0
    expect p UNPATCHED
    feed p ping
    expect p PATCHED
    blocked_in p 0
    revert_via_daemon blocked_read-1
    blocked_in p 0
    feed p ping
    expect p UNPATCHED
    daemon_stop
}
