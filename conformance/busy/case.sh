# busy: threads running inside the function while it is patched and reverted (default, not
# strict): they finish the call they are in with the old code and take the jump on the next call.
run() {
    case_init
    cc_lib libbusy.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lbusy
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch busy-1 1 libbusy.so patch.so --replace busy_loop=busy_loop_fixed
    apply_then_revert p busy-1
}
