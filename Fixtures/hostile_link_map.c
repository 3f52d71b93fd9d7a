// Preloaded into a program (LD_PRELOAD), rewrites the dynamic linker's list of loaded objects as
// debuggers and patchers see it (`_r_debug.r_map`, the list walked to find an object's
// thread-local storage), as a hostile program could do to its own memory. glibc's own lookups use
// their private list, so the program runs on unharmed. HOSTILE_LINK_MAP says how:
//   cycle     two crafted objects that link to each other, forever
//   long      a hundred thousand crafted objects, then the real list (the program's own last)
//   unmapped  a crafted object whose next object lies on a page that is no longer mapped
// Nothing else changes; a mode this file does not know exits the process with status 96.
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The public head of `struct link_map` (<link.h>): what a walk of the list reads. */
struct crafted_object {
    ElfW(Addr) l_addr;
    char *l_name;
    ElfW(Dyn) *l_ld;
    struct crafted_object *l_next, *l_prev;
};

static char crafted_name[] = "crafted";

static struct crafted_object *crafted(size_t count) {
    struct crafted_object *objects = calloc(count, sizeof *objects);
    if (!objects) _exit(95);
    for (size_t i = 0; i < count; i++) {
        objects[i].l_name = crafted_name;
        objects[i].l_next = i + 1 < count ? &objects[i + 1] : NULL;
        objects[i].l_prev = i > 0 ? &objects[i - 1] : NULL;
    }
    return objects;
}

__attribute__((constructor)) static void rewrite_the_list(void) {
    const char *mode = getenv("HOSTILE_LINK_MAP");
    if (!mode) return;
    struct crafted_object *first;
    if (strcmp(mode, "cycle") == 0) {
        first = crafted(2);
        first[1].l_next = &first[0];
    } else if (strcmp(mode, "long") == 0) {
        size_t count = 100000;
        first = crafted(count);
        first[count - 1].l_next = (struct crafted_object *)_r_debug.r_map;
    } else if (strcmp(mode, "unmapped") == 0) {
        long page = sysconf(_SC_PAGESIZE);
        void *gone = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (gone == MAP_FAILED || munmap(gone, (size_t)page) != 0) _exit(95);
        first = crafted(1);
        first[0].l_next = gone;
    } else {
        _exit(96);
    }
    _r_debug.r_map = (struct link_map *)first;
}
