// Patch object for indirect_calls: prints once the implementations its own GOT slots were bound
// to, for the functions the program imports and for some it does not (tick_fixed), and formats records with snprintf and the indirect functions, checking each
// result (format_record_fixed). Built with -fno-plt -fno-builtin so every call goes through a slot.
#include <stdio.h>
#include <string.h>
#include <wchar.h>

#define OWN_SLOT(name) ({ void *slot_; __asm__("movq " #name "@GOTPCREL(%%rip), %0" : "=r"(slot_)); slot_; })
#define EACH_FUNCTION(X) X(strlen) X(memcpy) X(memset) X(memcmp) X(strcmp) X(strchr) X(memchr) \
    X(strncpy) X(strcpy) X(stpcpy) X(strnlen) X(wmemset) X(strstr)
#define EACH_UNIMPORTED(X) X(strrchr) X(memmove) X(strcasecmp) X(strncmp) X(strcspn) X(strpbrk) X(strspn) X(memrchr)
#define PRINT_SLOT(name) printf(" %s=%p", #name, OWN_SLOT(name));

static int printed;

void tick_fixed(void) {
    if (printed) return;
    printed = 1;
    printf("patch");
    EACH_FUNCTION(PRINT_SLOT)
    EACH_UNIMPORTED(PRINT_SLOT)
    printf("\n");
    fflush(stdout);
}

void format_record_fixed(int worker, unsigned long round, char *out, size_t size) {
    char word[32], copy[32], joined[64];
    wchar_t wide[4];
    memset(word, 0, sizeof word);
    memcpy(word, "patched", 8);
    strncpy(copy, word, sizeof copy);
    char *end = stpcpy(joined, word);
    strcpy(end, "+ok");
    wmemset(wide, L'x', 4);
    int ok = strlen(word) == 7 && memcmp(copy, word, 8) == 0 && strcmp(joined, "patched+ok") == 0
        && strchr(word, 'h') == word + 4 && memchr(word, 'd', 7) == word + 6 && strnlen(joined, 3) == 3
        && strstr(joined, "+ok") == joined + 7 && wide[3] == L'x';
    snprintf(out, size, "worker=%d round=%lu %s ok=%d", worker, round, word, ok);
}
