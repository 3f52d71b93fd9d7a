# ifunc: the fix calls strlen, memcpy, memset, strchr and strcmp (IFUNCs in glibc) and snprintf;
# no flag is needed. Needs issue 10 section 1; until then the agent refuses the patch object.
run() {
    case_init
    cc_lib libifunc.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lifunc
    cc_patch patch.so "$SRC/patch.c" -fno-builtin
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch ifunc-1 1 libifunc.so patch.so --replace greet=greet_fixed
    apply_then_revert p ifunc-1
}
