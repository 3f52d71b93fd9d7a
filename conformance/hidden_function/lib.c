// hidden_function: the function to fix is hidden (visibility "hidden": not in .dynsym, only in
// .symtab), reached through an exported one, as most of a library's functions are.
__attribute__((noipa, visibility("hidden"))) int compute(int x) { return x > 1000000 ? -1 : x + 1; }

__attribute__((noipa)) int answer(int x) { return compute(x); }
