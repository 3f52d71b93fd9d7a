// endbr64: built with -fcf-protection=full (as Ubuntu and Fedora build), so every function
// starts with endbr64 (f3 0f 1e fa).
#include <string.h>

__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }

// Whether answer() really starts with endbr64 (checked by the program before anything else).
int answer_starts_with_endbr64(void) {
    return memcmp((const void *)answer, "\xf3\x0f\x1e\xfa", 4) == 0;
}
