// Reads libc's `stderr` (a data symbol of libc, bound through a GOT slot) and asks fileno().
#include <stdio.h>

int answer_fixed(int x) { return fileno(stderr) == 2 ? x + 2 : -2; }
