#include "conformance.h"

void format_parameters(char *out, int size, long a1, long a2, long a3, long a4, long a5, long a6, long a7,
                       long a8, long a9, long a10, double d1, double d2, double d3, double d4, double d5,
                       double d6, double d7, double d8, double d9, double d10);

int main(void) {
    const char *original = "1-2-3-4-5-6-7-8-9-10 1.0-2.0-3.0-4.0-5.0-6.0-7.0-8.0-9.0-10.0";
    const char *fixed = "10-9-8-7-6-5-4-3-2-1 10.0-9.0-8.0-7.0-6.0-5.0-4.0-3.0-2.0-1.0";
    for (;;) {
        char out[160];
        format_parameters(out, sizeof out, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0,
                          10.0);
        if (strcmp(out, original) == 0) report("UNPATCHED");
        else if (strcmp(out, fixed) == 0) report("PATCHED");
        else bad("format_parameters wrote \"%s\"", out);
        sleep_ms(10);
    }
}
