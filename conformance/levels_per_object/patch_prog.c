int program_part_fixed(int x) { return x * 3; }
