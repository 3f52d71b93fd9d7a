// A program whose `count_up` has its loop head at offset 5: inside the 14-byte absolute jump but
// past the 5-byte one, so hotpatch-pack marks it near_only. With --crowd it first reserves (as
// PROT_NONE, no memory committed) every free page within 2 GiB of its own executable, so a patch
// image could only be mapped beyond the near jump's reach. Prints its result every 20 ms.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int count_up(int step, int times);
__asm__(".text\n.globl count_up\n.type count_up,@function\ncount_up:\n"
        "  mov $0, %eax\n"                  // 5 bytes: the near jump covers exactly these
        "1: add %edi, %eax\n  dec %esi\n"   // the loop head, at offset 5
        "  .fill 6, 1, 0x90\n  jnz 1b\n  ret\n"
        ".size count_up, .-count_up\n");

enum { maximumMappings = 4096 };
static uintptr_t starts[maximumMappings], ends[maximumMappings];
static char paths[maximumMappings][256];

// Reserves each hole of [low, high) between the process's mappings; returns the bytes reserved.
static uintptr_t crowd(void) {
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return 0;
    char line[512];
    int count = 0;
    while (count < maximumMappings && fgets(line, sizeof line, maps)) {
        paths[count][0] = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &starts[count], &ends[count], paths[count]) >= 2) count++;
    }
    fclose(maps);
    // The executable's extent: every mapping of the file that holds count_up.
    uintptr_t self = (uintptr_t)&count_up, low = UINTPTR_MAX, high = 0;
    const char *file = NULL;
    for (int i = 0; i < count; i++)
        if (self >= starts[i] && self < ends[i]) file = paths[i];
    for (int i = 0; i < count && file; i++) {
        if (strcmp(paths[i], file) != 0) continue;
        if (starts[i] < low) low = starts[i];
        if (ends[i] > high) high = ends[i];
    }
    if (!file) return 0;
    const uintptr_t reach = (uintptr_t)1 << 31, margin = (uintptr_t)64 << 20;
    uintptr_t windowLow = high > reach + margin + 0x10000 ? high - reach - margin : 0x10000;
    uintptr_t windowHigh = low + reach + margin;
    uintptr_t reserved = 0, previousEnd = windowLow;
    for (int i = 0; i <= count; i++) {
        uintptr_t holeLow = previousEnd, holeHigh = i < count ? starts[i] : windowHigh;
        if (holeHigh > windowHigh) holeHigh = windowHigh;
        if (holeHigh > holeLow &&
            mmap((void *)holeLow, holeHigh - holeLow, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0) == (void *)holeLow)
            reserved += holeHigh - holeLow;
        if (i < count && ends[i] > previousEnd) previousEnd = ends[i];
    }
    return reserved;
}

int main(int argc, char **argv) {
    volatile int step = 3, times = 4;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--crowd") == 0) printf("crowded %lu MiB\n", (unsigned long)(crowd() >> 20));
    puts("ready");
    for (;;) {
        printf("count=%d\n", count_up(step, times));
        usleep(20000);
    }
}
