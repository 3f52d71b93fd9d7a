int level_1(int x) { return x > 1000000 ? -1 : 1; }
