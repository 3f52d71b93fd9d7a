// mount_ns: the library of a process in a mount namespace of its own.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
