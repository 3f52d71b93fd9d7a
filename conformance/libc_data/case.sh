# libc_data: the fix reads a data symbol of libc (stderr) and calls libc.
run() { library_case liblibcdata.so --replace answer=answer_fixed; }
