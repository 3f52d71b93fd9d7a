# libc_data: the fix reads a data symbol of libc (stderr) and calls libc.
# The library depends on libc, as real ones do (it calls nothing of libc itself, so the linker would
# drop the dependency): hotpatch-pack resolves the fix's symbols in the target's dependencies.
run() {
    LIB_FLAGS=(-Wl,--no-as-needed)
    library_case liblibcdata.so --replace answer=answer_fixed
}
