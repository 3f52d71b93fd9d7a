// sigwait: the function each signal-waiting thread calls when its signal comes.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
