// Both functions change (a fix that changes stuck()'s frame would make a return into the old
// one unsafe: what strict_stack_check guards against).
#include <unistd.h>

int answer_fixed(int x) { return x + 2; }

int stuck_fixed(void) {
    char line[64];
    int got = (int)read(0, line, sizeof line);
    return got > 0 ? 2 : -1;
}
