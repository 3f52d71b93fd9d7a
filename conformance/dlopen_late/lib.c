// dlopen_late: a library the program loads with dlopen only when told to.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
