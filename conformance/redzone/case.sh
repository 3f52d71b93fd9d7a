# redzone: threads stopped inside a leaf function that keeps live data in the red zone; patching
# and reverting must not touch those 128 bytes.
run() {
    case_init
    cc_lib libredzone.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lredzone
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch redzone-1 1 libredzone.so patch.so --replace answer=answer_fixed
    apply_then_revert p redzone-1
    # Every thread stopped in the red-zone loop checks it again after the revert.
    stays p UNPATCHED 1
}
