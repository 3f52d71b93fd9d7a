# parameters: ten integer and ten floating-point parameters reach the replacement intact.
run() {
    case_init
    cc_lib libparameters.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lparameters
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch parameters-1 1 libparameters.so patch.so --replace format_parameters=format_parameters_fixed
    apply_then_revert p parameters-1
}
