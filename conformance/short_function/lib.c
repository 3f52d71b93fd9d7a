// short_function: answer() is 4 bytes at -O2 (lea 0x1(%rdi),%eax; ret), shorter than the 5-byte
// jump; the alignment padding before it (functions are 16-byte aligned) has room for the long
// jump, and the entry gets a 2-byte short jump into it, the classic hotpatch way.

// A short neighbour before it, so that answer() is preceded by more than 5 bytes of its alignment
// padding.
__attribute__((noipa)) int neighbour(int x) { return x - 1; }

__attribute__((noipa)) int answer(int x) { return x + 1; }
