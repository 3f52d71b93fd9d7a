// parameters: ten integer and ten floating-point parameters (six integers in registers, four on
// the stack; eight doubles in xmm0-7, two on the stack), written out in order.
#include <stdio.h>

__attribute__((noipa)) void format_parameters(char *out, int size, long a1, long a2, long a3, long a4, long a5,
                                              long a6, long a7, long a8, long a9, long a10, double d1, double d2,
                                              double d3, double d4, double d5, double d6, double d7, double d8,
                                              double d9, double d10) {
    snprintf(out, size, "%ld-%ld-%ld-%ld-%ld-%ld-%ld-%ld-%ld-%ld %.1f-%.1f-%.1f-%.1f-%.1f-%.1f-%.1f-%.1f-%.1f-%.1f",
             a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10);
}
