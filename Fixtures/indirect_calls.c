// A multi-threaded program that calls glibc's GNU indirect functions (strlen, memcpy, …) through
// its own GOT slots (built with -fno-plt) and prints, first, the implementation each slot holds:
// the code this process itself runs for each. It then prints what its dynamic linker resolves
// (dlsym) for indirect functions it never imports, so only libc's own slots can tell a patch.
// Three workers format records; `tick` does nothing until a patch replaces it.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The GOT slot this program's own calls go through (built with -fno-plt): what it calls. */
#define OWN_SLOT(name) ({ void *slot_; __asm__("movq " #name "@GOTPCREL(%%rip), %0" : "=r"(slot_)); slot_; })
#define EACH_FUNCTION(X) X(strlen) X(memcpy) X(memset) X(memcmp) X(strcmp) X(strchr) X(memchr) \
    X(strncpy) X(strcpy) X(stpcpy) X(strnlen) X(wmemset) X(strstr)
#define PRINT_SLOT(name) printf(" %s=%p", #name, OWN_SLOT(name));
/* Indirect functions this program does not import (no slot of its own). */
#define EACH_UNIMPORTED(X) X(strrchr) X(memmove) X(strcasecmp) X(strncmp) X(strcspn) X(strpbrk) X(strspn) X(memrchr)
#define PRINT_RESOLVED(name) printf(" %s=%p", #name, dlsym(RTLD_DEFAULT, #name));

__attribute__((noinline)) void format_record(int worker, unsigned long round, char *out, size_t size) {
    snprintf(out, size, "worker=%d round=%lu original", worker, round);
}

__attribute__((noinline)) void tick(void) {
    __asm__ volatile("");
}

static void *work(void *argument) {
    int worker = (int)(long)argument;
    char line[160];
    for (unsigned long round = 0;; round++) {
        format_record(worker, round, line, sizeof line);
        if (round % 20 == 0) { printf("%s\n", line); fflush(stdout); }
        usleep(2000);
    }
    return NULL;
}

int main(void) {
    printf("fixture");
    EACH_FUNCTION(PRINT_SLOT)
    printf("\n");
    printf("resolved");
    EACH_UNIMPORTED(PRINT_RESOLVED)
    printf("\n");
    pthread_t threads[3];
    for (long i = 0; i < 3; i++) pthread_create(&threads[i], NULL, work, (void *)i);
    printf("ready\n");
    fflush(stdout);
    for (;;) { tick(); usleep(20000); }
}
