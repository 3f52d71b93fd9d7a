// levels_per_object: the library, fixed by level 1 alone.
__attribute__((noipa)) int library_part(int x) { return x > 1000000 ? -1 : x + 1; }
