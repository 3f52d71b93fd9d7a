/* A multi-threaded program that sizes its output with zlib's deflateBound() and compresses a short
 * record in one deflate(Z_FINISH) call, as a caller trusting the bound does: level 0 (stored) and
 * memLevel 9, zlib wrapper. zlib 1.2.13's deflateBound() returns a bound too small for that case
 * (fixed upstream in e5546956, zlib 1.3), so the one call cannot finish: deflate() returns Z_OK
 * with the output full instead of Z_STREAM_END. Nothing crashes either way.
 *
 * Usage: zbound-mt [--threads N] [--interval-ms MS]. Every interval the main thread prints
 *   zbound-mt: threads=N bound=B needed=S finished=F/N calls=C
 * (B the latest bound, S the size of the whole stream, F the threads whose latest call finished). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define MAX_THREADS 16

static const unsigned char record[] = "hello"; /* 5 bytes: a stored block needs more than the bound */

struct worker {
    pthread_t thread;
    atomic_ulong bound;     /* deflateBound() of its latest call */
    atomic_ulong needed;    /* size of the whole stream, once compressed with room to spare */
    atomic_int finished;    /* whether its latest one-shot deflate() returned Z_STREAM_END */
    atomic_ulong calls;
};

static struct worker workers[MAX_THREADS];

/* Compresses the record into exactly deflateBound() bytes (avail_out), in one call. */
static int compress_once(unsigned long avail_out_extra, unsigned long *bound_out, unsigned long *size_out) {
    unsigned char out[256];
    z_stream strm;
    memset(&strm, 0, sizeof strm);
    if (deflateInit2(&strm, 0, Z_DEFLATED, 15, 9, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    uLong bound = deflateBound(&strm, sizeof record - 1);
    strm.next_in = (Bytef *)record;
    strm.avail_in = sizeof record - 1;
    strm.next_out = out;
    strm.avail_out = (uInt)(bound + avail_out_extra);
    int ret = deflate(&strm, Z_FINISH);
    *bound_out = bound;
    *size_out = strm.total_out;
    deflateEnd(&strm);
    return ret;
}

static void *work(void *arg) {
    struct worker *w = arg;
    for (;;) {
        unsigned long bound, size, room_bound, needed;
        int ret = compress_once(0, &bound, &size);
        compress_once(64, &room_bound, &needed);
        atomic_store(&w->bound, bound);
        atomic_store(&w->needed, needed);
        atomic_store(&w->finished, ret == Z_STREAM_END);
        atomic_fetch_add(&w->calls, 1);
        struct timespec pause = {0, 10 * 1000 * 1000}; /* a light load: the test shares 2 cores */
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 4, interval_ms = 250;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--interval-ms") == 0) interval_ms = atoi(argv[i + 1]);
    }
    if (threads < 1 || threads > MAX_THREADS || interval_ms < 1) {
        fprintf(stderr, "usage: zbound-mt [--threads 1..%d] [--interval-ms MS]\n", MAX_THREADS);
        return 64;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&workers[i].thread, NULL, work, &workers[i]) != 0) { perror("pthread_create"); return 1; }
    for (;;) {
        struct timespec pause = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
        unsigned long calls = 0, bound = 0, needed = 0;
        int finished = 0;
        for (int i = 0; i < threads; i++) {
            calls += atomic_load(&workers[i].calls);
            finished += atomic_load(&workers[i].finished);
            bound = atomic_load(&workers[i].bound);
            needed = atomic_load(&workers[i].needed);
        }
        printf("zbound-mt: threads=%d bound=%lu needed=%lu finished=%d/%d calls=%lu\n",
               threads, bound, needed, finished, threads, calls);
    }
}
