// UNPATCHED while next_ticket() returns the count, PATCHED while it returns the count + 1,000,000
// and the count itself goes on rising by one per call.
#include "conformance.h"

int next_ticket(void);

int main(void) {
    int previous = next_ticket();
    for (;;) {
        int value = next_ticket(), count = value > 1000000 ? value - 1000000 : value;
        if (count != previous + 1) bad("the count went from %d to %d in one call", previous, count);
        else report_value(value, count, count + 1000000);
        previous = count;
        sleep_ms(10);
    }
}
