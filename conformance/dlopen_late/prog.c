// Prints WAITING until a line arrives on stdin, then dlopen()s libdlate.so (beside the program)
// and reports what its answer() returns, every 10 ms.
#include <dlfcn.h>
#include <limits.h>
#include <libgen.h>
#include <unistd.h>
#include "conformance.h"

int main(void) {
    report("WAITING");
    char line[64];
    if (read(0, line, sizeof line) <= 0) bad("stdin closed");
    char self[PATH_MAX] = { 0 }, path[PATH_MAX + 16];
    if (readlink("/proc/self/exe", self, sizeof self - 1) < 0) bad("readlink /proc/self/exe failed");
    snprintf(path, sizeof path, "%s/libdlate.so", dirname(self));
    void *library = dlopen(path, RTLD_NOW);
    if (library == NULL) { bad("dlopen failed: %s", dlerror()); return 1; }
    int (*answer)(int) = (int (*)(int))dlsym(library, "answer");
    if (answer == NULL) { bad("dlsym answer failed"); return 1; }
    for (;;) {
        report_value(answer(41), 42, 43);
        sleep_ms(10);
    }
}
