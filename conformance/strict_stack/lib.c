// strict_stack: stuck() keeps its caller inside it (blocked in read) until a line comes.
#include <unistd.h>

__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }

__attribute__((noipa)) int stuck(void) {
    char line[64];
    int got = (int)read(0, line, sizeof line);
    return got > 0 ? 1 : -1;
}
