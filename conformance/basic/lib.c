// basic: one exported function of a shared library, replaced. (The bound check keeps it longer
// than the 5-byte jump; shorter functions are the short_function case.)
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
