// libc_data: the function whose fix reads libc's data (stderr) and calls libc (fileno).
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }
