// Checks that crossing() does start 2 bytes before a page boundary, then reports what it returns.
#include <stdint.h>
#include "conformance.h"

int crossing(void);

int main(void) {
    if (((uintptr_t)crossing & 4095) != 4094) bad("crossing() starts at page offset %lu, not 4094", (unsigned long)((uintptr_t)crossing & 4095));
    for (;;) {
        report_value(crossing(), 1, 2);
        sleep_ms(10);
    }
}
