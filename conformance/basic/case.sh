# basic: a function of a shared library replaced in a running program, and reverted.
run() {
    case_init
    cc_lib libbasic.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lbasic
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch basic-1 1 libbasic.so patch.so --replace answer=answer_fixed
    apply_then_revert p basic-1
}
