// main_exe: the replaced function is in the program itself (a position-independent executable),
// not in a library.
#include "conformance.h"

__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }

int main(void) {
    for (;;) {
        report_value(answer(41), 42, 43);
        sleep_ms(10);
    }
}
