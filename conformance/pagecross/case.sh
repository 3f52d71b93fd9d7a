# pagecross: the entry of the replaced function crosses a page boundary (the 5-byte jump is
# written into two pages).
run() {
    case_init
    cc_lib libpagecross.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lpagecross
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch pagecross-1 1 libpagecross.so patch.so --replace crossing=crossing_fixed
    apply_then_revert p pagecross-1
}
