int level_3(int x) { return x > 1000000 ? -1 : 3; }
