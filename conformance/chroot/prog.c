// Loads its library, then chroot()s into argv[1] (an empty directory: nothing the agent names
// by path exists there) and reports answer() every 10 ms.
#include <unistd.h>
#include "conformance.h"

int answer(int x);

int main(int argc, char **argv) {
    if (argc != 2 || chroot(argv[1]) != 0 || chdir("/") != 0) { bad("cannot chroot into %s", argc > 1 ? argv[1] : "?"); return 1; }
    for (;;) {
        report_value(answer(41), 42, 43);
        sleep_ms(10);
    }
}
