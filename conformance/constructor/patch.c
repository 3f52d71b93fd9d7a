// Reads the library's static `ready`, set by its constructor (--ref ready).
extern int ready;

int answer_fixed(int x) { return ready == 42 ? x + 2 : -2; }
