#include "conformance.h"

int greet(char *out, int size, const char *name);

int main(void) {
    for (;;) {
        char out[128];
        int length = greet(out, sizeof out, "conformance");
        if (length == 18 && strcmp(out, "hello, conformance") == 0) report("UNPATCHED");
        else if (length == 24 && strcmp(out, "hello, conformance! (11)") == 0) report("PATCHED");
        else bad("greet wrote \"%s\" (%d)", out, length);
        sleep_ms(10);
    }
}
