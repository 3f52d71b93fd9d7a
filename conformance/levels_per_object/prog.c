// program_part() in the executable and library_part() in the library, each fixed by its own
// level; prints which are fixed: UNPATCHED, "PATCHED library", "PATCHED program" or
// "PATCHED both".
#include "conformance.h"

int library_part(int x);

__attribute__((noipa)) int program_part(int x) { return x > 1000000 ? -1 : x * 2; }

int main(void) {
    for (;;) {
        int program = program_part(10), library = library_part(41);
        if ((program != 20 && program != 30) || (library != 42 && library != 43)) {
            bad("program_part(10) = %d, library_part(41) = %d", program, library);
        } else {
            const char *lines[2][2] = { { "UNPATCHED", "PATCHED library" }, { "PATCHED program", "PATCHED both" } };
            report(lines[program == 30][library == 43]);
        }
        sleep_ms(10);
    }
}
