// many_processes: the library mapped by a thousand processes.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
