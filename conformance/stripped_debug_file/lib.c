// stripped_debug_file: the library runs stripped (as distributions ship it); its symbols are in a
// separate debug file with the same build-id (as in Debian's -dbgsym packages).
__attribute__((noipa)) static int compute(int x) { return x > 1000000 ? -1 : x + 1; }

__attribute__((noipa)) int answer(int x) { return compute(x); }
