/* The e2e test's expat program (check 11): each round it runs the reproducer of the XML_ParseBuffer
 * read past its buffer (packaging/e2e/reallib/expat-CVE-2026-77214.diff) on a new parser:
 *
 *   buffer = XML_GetBuffer(parser, 16); copy "<a/>" into it;
 *   XML_ParseBuffer(parser, 5000, 0)   -- a length beyond what XML_GetBuffer gave
 *   XML_ParseBuffer(parser, 4, 1)      -- the correct call, the 4 bytes really there
 *
 * expat 2.5.0 as bookworm ships it (libexpat1 2.5.0-1+deb12u2) takes the 5000 bytes: it parses
 * past what it was given and fails on what it finds there (error 4, XML_ERROR_INVALID_TOKEN, on the
 * zero bytes after "<a/>"), and the parser stays failed. Fixed (the hotpatch, or bookworm-security's
 * 2.5.0-1+deb12u5), the length is refused (error 41, XML_ERROR_INVALID_ARGUMENT) and the parser
 * still parses the correct call.
 *
 * The parser allocates from an arena of this program (XML_ParserCreate_MM, expat's memory-handling
 * suite), zeroed before each round: what lies beyond the buffer (1024 bytes, expat's smallest) is
 * then known, so the unfixed library fails the same way every round (with malloc's heap the error
 * depended on the garbage found there: 4 on one run, 9 in the service), and its read stays inside
 * this arena rather than wherever the heap's top happens to end.
 *
 * It prints, at start, the build-id of the libexpat.so.1 it loaded, and every round
 *   xmlbuf-svc: oversized=E (expat's text for E) then=ok|error(E2) round=N
 * Usage: xmlbuf-svc [--interval-ms MS] [--rounds N]   (default 250 ms, rounds without end)
 * No expat header needed: the few prototypes are declared here, and it links -l:libexpat.so.1. */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct XML_ParserStruct *XML_Parser;
typedef struct {
    void *(*malloc_fcn)(size_t size);
    void *(*realloc_fcn)(void *ptr, size_t size);
    void (*free_fcn)(void *ptr);
} XML_Memory_Handling_Suite;
extern XML_Parser XML_ParserCreate_MM(const char *encoding, const XML_Memory_Handling_Suite *memsuite, const char *separator);
extern void *XML_GetBuffer(XML_Parser parser, int len);
extern int XML_ParseBuffer(XML_Parser parser, int len, int isFinal); /* 1 = XML_STATUS_OK */
extern int XML_GetErrorCode(XML_Parser parser);
extern const char *XML_ErrorString(int code);
extern void XML_ParserFree(XML_Parser parser);

/* A bump allocator over a static arena, reset and zeroed before each round; free does nothing. Each
 * block starts with its size (for realloc), blocks are 16-byte aligned. */
static _Alignas(16) unsigned char arena[1 << 20];
static size_t arena_used;

static void *arena_malloc(size_t size) {
    size_t start = arena_used + 16, end = start + ((size + 15) & ~(size_t)15);
    if (end > sizeof arena) return NULL;
    *(size_t *)(arena + arena_used) = size;
    arena_used = end;
    return arena + start;
}

static void *arena_realloc(void *ptr, size_t size) {
    if (ptr == NULL) return arena_malloc(size);
    size_t old = *(size_t *)((unsigned char *)ptr - 16);
    void *moved = arena_malloc(size);
    if (moved != NULL) memcpy(moved, ptr, old < size ? old : size);
    return moved;
}

static void arena_free(void *ptr) { (void)ptr; }

static void arena_reset(void) {
    memset(arena, 0, arena_used);
    arena_used = 0;
}

/* The GNU build-id of the loaded object whose path contains "libexpat.so.1", as hex. */
static int find_build_id(struct dl_phdr_info *info, size_t size, void *out) {
    (void)size;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libexpat.so.1") == NULL) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const char *note = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = note + ph->p_memsz;
        while (note + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)note;
            const unsigned char *name = (const unsigned char *)(nh + 1);
            const unsigned char *desc = name + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                char *hex = out;
                for (unsigned j = 0; j < nh->n_descsz && j < 64; j++) sprintf(hex + 2 * j, "%02x", desc[j]);
                snprintf(hex + 2 * (nh->n_descsz < 64 ? nh->n_descsz : 64), 64, " %s", info->dlpi_name);
                return 1;
            }
            note = (const char *)desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    int interval_ms = 250;
    long rounds = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc) interval_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atol(argv[++i]);
        else interval_ms = 0;
    }
    if (interval_ms < 1 || rounds < 0) { fprintf(stderr, "usage: xmlbuf-svc [--interval-ms MS] [--rounds N]\n"); return 64; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char build_id[256] = "unknown";
    dl_iterate_phdr(find_build_id, build_id);
    printf("xmlbuf-svc: libexpat build-id %s\n", build_id);
    for (long round = 1; rounds == 0 || round <= rounds; round++) {
        static const XML_Memory_Handling_Suite suite = {arena_malloc, arena_realloc, arena_free};
        arena_reset();
        XML_Parser parser = XML_ParserCreate_MM(NULL, &suite, NULL);
        if (parser == NULL) { fprintf(stderr, "xmlbuf-svc: XML_ParserCreate_MM failed (arena full)\n"); return 1; }
        char *buffer = XML_GetBuffer(parser, 16);
        if (buffer == NULL) { fprintf(stderr, "xmlbuf-svc: XML_GetBuffer failed\n"); return 1; }
        memcpy(buffer, "<a/>", 4);
        int oversized = XML_ParseBuffer(parser, 5000, 0) == 1 ? 0 : XML_GetErrorCode(parser);
        char then[32] = "ok";
        if (XML_ParseBuffer(parser, 4, 1) != 1) snprintf(then, sizeof then, "error(%d)", XML_GetErrorCode(parser));
        printf("xmlbuf-svc: oversized=%d (%s) then=%s round=%ld\n", oversized,
               oversized ? XML_ErrorString(oversized) : "accepted", then, round);
        XML_ParserFree(parser);
        if (rounds != 0 && round == rounds) break;
        struct timespec pause = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    return 0;
}
