# ref_static: the fix calls the library's static function, reads its static read-only data and
# updates its static counter, all reached with --ref (not exported).
run() {
    case_init
    cc_lib libref.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lref
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch ref_static-1 1 libref.so patch.so --replace tick=tick_fixed --ref hits --ref greeting --ref scaled
    apply_then_revert p ref_static-1
}
