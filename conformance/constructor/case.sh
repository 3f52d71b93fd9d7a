# constructor: a program whose work runs from constructors (its own starts the calling thread, the
# library's sets the state the fix reads) is patched by --once; a second one started while the
# daemon runs is patched by the daemon as it starts; both are reverted.
run() {
    case_init
    cc_lib libctor.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lctor
    cc_patch patch.so "$SRC/patch.c"
    start first ./prog
    expect first UNPATCHED
    publish_hotpatch constructor-1 1 libctor.so patch.so --replace answer=answer_fixed --ref ready
    apply_once
    expect first PATCHED
    daemon_start
    start second ./prog
    expect second PATCHED 10
    ctl revert constructor-1
    expect first UNPATCHED
    expect second UNPATCHED
    daemon_stop
}
