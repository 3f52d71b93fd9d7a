# stripped_debug_file: the running library is stripped; the hotpatch is built from it and its
# separate debug file (--debug-file), and replaces a static function only the debug file names.
run() {
    case_init
    cc_lib libstripped.so.full "$SRC/lib.c"
    objcopy --only-keep-debug libstripped.so.full libstripped.so.debug
    strip --strip-all -o libstripped.so libstripped.so.full
    nm libstripped.so 2>&1 | grep -q compute && fail "the stripped library still names compute()"
    cc_prog prog "$SRC/prog.c" -L. -lstripped
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch stripped_debug_file-1 1 libstripped.so patch.so --debug-file libstripped.so.debug --replace compute=compute_fixed
    apply_then_revert p stripped_debug_file-1
}
