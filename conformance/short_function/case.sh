# short_function: a function shorter than the 5-byte jump, preceded by alignment padding, patched
# with a short jump into the padding. Needs issue 10 section 4; until then hotpatch-pack refuses it.
run() {
    case_init
    cc_lib libshort.so "$SRC/lib.c" -falign-functions=16
    local size
    size=$(nm -S libshort.so | awk '$4 == "answer" { print $2 }')
    [ -n "$size" ] && [ $((16#$size)) -lt 5 ] || fail "answer() is $size bytes: the compiler did not make it shorter than the jump"
    cc_prog prog "$SRC/prog.c" -L. -lshort
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch short_function-1 1 libshort.so patch.so --replace answer=answer_fixed
    apply_then_revert p short_function-1
}
