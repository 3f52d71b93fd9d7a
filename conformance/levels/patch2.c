int level_2(int x) { return x > 1000000 ? -1 : 2; }
