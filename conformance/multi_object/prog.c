// The program half: program_part() in the executable, library_part() in the library. One release
// fixes both, in one stop: seeing one fixed and not the other is BAD.
#include <unistd.h>
#include "conformance.h"

int library_part(int x);

__attribute__((noipa)) int program_part(int x) { return x > 1000000 ? -1 : x * 2; }

int main(void) {
    for (;;) {
        int program = program_part(10), library = library_part(41);
        if (program == 20 && library == 42) report("UNPATCHED");
        else if (program == 30 && library == 43) report("PATCHED");
        else bad("program_part(10) = %d but library_part(41) = %d: only one object is patched", program, library);
        usleep(1000);
    }
}
