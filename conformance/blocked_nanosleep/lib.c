// blocked_nanosleep: the function the program calls after each sleep.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
