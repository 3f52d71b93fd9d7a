// UNPATCHED while tick() returns the library's count, PATCHED while it returns count*10+5 and
// the library's own count goes on rising by one per call.
#include "conformance.h"

int tick(void);
int hits_now(void);

int main(void) {
    for (;;) {
        int before = hits_now(), value = tick(), after = hits_now();
        if (after != before + 1) bad("hits went from %d to %d in one call", before, after);
        else report_value(value, after, after * 10 + 5);
        sleep_ms(10);
    }
}
