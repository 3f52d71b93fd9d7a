# main_exe: a function of the main executable replaced and reverted.
run() {
    case_init
    cc_prog prog "$SRC/prog.c"
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch main_exe-1 1 prog patch.so --replace answer=answer_fixed
    apply_then_revert p main_exe-1
}
