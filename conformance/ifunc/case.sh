# ifunc: the fix calls strlen, memcpy, memset, strchr and strcmp (IFUNCs in glibc) and snprintf;
# no flag is needed.
run() {
    # Calls stay calls (gcc would otherwise inline memset and strcmp here). The library depends on
    # libc, as real ones do (it calls nothing of libc itself, so the linker would drop the
    # dependency): hotpatch-pack resolves the fix's symbols in the target's dependencies.
    LIB_FLAGS=(-fno-builtin -Wl,--no-as-needed)
    library_case libifunc.so --replace greet=greet_fixed
}

before_patch() {
    local symbol
    for symbol in strlen memcpy memset strchr strcmp snprintf; do
        nm -u patch.so | grep -q " U $symbol@" || fail "the fix does not call $symbol: $(nm -u patch.so | tr -s ' \n' ' ')"
    done
}
