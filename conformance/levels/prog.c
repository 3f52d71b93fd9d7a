// Prints UNPATCHED while level() returns 0, "PATCHED N" while it returns level N (1-3).
#include "conformance.h"

int level(int x);

int main(void) {
    for (;;) {
        int n = level(1);
        char line[32];
        if (n == 0) report("UNPATCHED");
        else if (n >= 1 && n <= 3) { snprintf(line, sizeof line, "PATCHED %d", n); report(line); }
        else bad("level() returned %d", n);
        sleep_ms(10);
    }
}
