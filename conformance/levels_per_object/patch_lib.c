int library_part_fixed(int x) { return x + 2; }
