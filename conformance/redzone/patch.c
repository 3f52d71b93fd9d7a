int answer_fixed(int x) { return x + 2; }
