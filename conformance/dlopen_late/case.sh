# dlopen_late: the hotpatch is in force (applied by --once, the daemon running) before a running
# program loads the target library with dlopen; the daemon patches it as soon as it is mapped,
# without a new exec. Needs the daemon's mapping watch (issue 10); until then it stays unpatched.
run() {
    case_init
    cc_lib libdlate.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -ldl
    cc_patch patch.so "$SRC/patch.c"
    publish_hotpatch dlopen_late-1 1 libdlate.so patch.so --replace answer=answer_fixed
    start p ./prog
    expect p WAITING
    apply_once
    daemon_start
    feed p load
    # The library is mapped now: maybe unpatched for a moment, patched within 3 s (the daemon
    # polls only every 5 minutes: only a watch on new mappings can do it).
    expect p PATCHED 3
    ctl revert dlopen_late-1
    expect p UNPATCHED
    daemon_stop
}
