// chroot: the library of a process that then locks itself into an empty directory.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
