// The fix as a distribution would write it: strlen, memcpy, memset, strchr, strcmp (GNU indirect
// functions in glibc, bound to the implementation the process itself uses) and snprintf.
#include <stdio.h>
#include <string.h>

int greet_fixed(char *out, int size, const char *name) {
    char buffer[128];
    size_t length = strlen(name);
    if (length > 64 || strchr(name, '%') != NULL || strcmp(name, "") == 0) return -1;
    memset(buffer, 0, sizeof buffer);
    memcpy(buffer, name, length);
    return snprintf(out, size, "hello, %s! (%zu)", buffer, length);
}
