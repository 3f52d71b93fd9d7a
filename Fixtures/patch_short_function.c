// The fix for short_function.c's `answer`.
int answer_fixed(int x) { return x + 1; }
