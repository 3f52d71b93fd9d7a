// thread_churn: the function every short-lived thread calls once.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
