int compute_fixed(int x) { return x + 2; }
