# short_function: a function shorter than the 5-byte jump, preceded by alignment padding, patched
# with a short jump into the padding. Needs issue 10 section 4; until then hotpatch-pack refuses it.
run() {
    LIB_FLAGS=(-falign-functions=16)
    library_case libshort.so --replace answer=answer_fixed
}

before_patch() {
    local size
    size=$(nm -S libshort.so | awk '$4 == "answer" { print $2 }')
    [ -n "$size" ] && [ $((16#$size)) -lt 5 ] || fail "answer() is ${size:-not found} bytes (hex): the compiler did not make it shorter than the jump"
}
