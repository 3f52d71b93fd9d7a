// Calls answer(41) through the PLT every 10 ms: 42 unpatched, 43 patched.
#include "conformance.h"

int answer(int x);

int main(void) {
    for (;;) {
        report_value(answer(41), 42, 43);
        sleep_ms(10);
    }
}
