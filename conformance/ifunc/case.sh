# ifunc: the fix calls strlen, memcpy, memset, strchr and strcmp (IFUNCs in glibc) and snprintf;
# no flag is needed. Needs issue 10 section 1; until then the agent refuses the patch object.
run() {
    # Calls stay calls (gcc would otherwise inline memset and strcmp here).
    LIB_FLAGS=(-fno-builtin)
    library_case libifunc.so --replace greet=greet_fixed
}

before_patch() {
    local symbol
    for symbol in strlen memcpy memset strchr strcmp snprintf; do
        nm -u patch.so | grep -q " U $symbol@" || fail "the fix does not call $symbol: $(nm -u patch.so | tr -s ' \n' ' ')"
    done
}
