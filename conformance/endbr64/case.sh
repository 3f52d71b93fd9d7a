# endbr64: the replaced function begins with endbr64 (-fcf-protection=full), patch and revert.
run() {
    case_init
    cc_lib libendbr64.so "$SRC/lib.c" -fcf-protection=full
    cc_prog prog "$SRC/prog.c" -L. -lendbr64 -fcf-protection=full
    cc_patch patch.so "$SRC/patch.c" -fcf-protection=full
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch endbr64-1 1 libendbr64.so patch.so --replace answer=answer_fixed
    apply_then_revert p endbr64-1
}
