/* Calls strncat, a GNU indirect function of glibc with no IRELATIVE relocation of its own, which
   the indirect_calls program never imports: no slot in that process says which implementation
   it would use. */
#include <stdio.h>
#include <string.h>

void format_record_fixed(int worker, unsigned long round, char *out, size_t size) {
    char word[32] = "patched";
    strncat(word, "!", 1);
    snprintf(out, size, "worker=%d round=%lu %s", worker, round, word);
}
