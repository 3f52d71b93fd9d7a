# blocked_read: the only thread is blocked in read(2) while it is patched and reverted; the read
# restarts and returns the line written afterwards.
run() {
    library_start libblockedread.so
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
