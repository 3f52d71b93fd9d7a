// The fix writes the parameters in reverse order: each must arrive where the original received it.
#include <stdio.h>

void format_parameters_fixed(char *out, int size, long a1, long a2, long a3, long a4, long a5, long a6, long a7,
                             long a8, long a9, long a10, double d1, double d2, double d3, double d4, double d5,
                             double d6, double d7, double d8, double d9, double d10) {
    snprintf(out, size, "%ld-%ld-%ld-%ld-%ld-%ld-%ld-%ld-%ld-%ld %.1f-%.1f-%.1f-%.1f-%.1f-%.1f-%.1f-%.1f-%.1f-%.1f",
             a10, a9, a8, a7, a6, a5, a4, a3, a2, a1, d10, d9, d8, d7, d6, d5, d4, d3, d2, d1);
}
