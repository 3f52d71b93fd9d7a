/* A single-threaded service that writes each message as a gzip member into a buffer sized by zlib's
 * deflateBound(), in one deflate(Z_FINISH) call: level 0 (stored), memLevel 9, gzip wrapper.
 * zlib 1.2.13's deflateBound() undercounts stored blocks at memLevel 9 (fixed upstream in e5546956,
 * zlib 1.3), so the member does not fit: deflate() returns Z_OK with the buffer full and the service
 * reports the message as truncated. Nothing crashes either way.
 *
 * Every interval (--interval-ms, default 250) it prints
 *   zgzip-svc: bound=B member=M result=complete|truncated messages=N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

int main(int argc, char **argv) {
    int interval_ms = (argc == 3 && strcmp(argv[1], "--interval-ms") == 0) ? atoi(argv[2]) : 250;
    if (interval_ms < 1) { fprintf(stderr, "usage: zgzip-svc [--interval-ms MS]\n"); return 64; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const char message[] = "ping"; /* 4 bytes */
    unsigned char buffer[256];
    for (unsigned long messages = 1;; messages++) {
        z_stream strm;
        memset(&strm, 0, sizeof strm);
        if (deflateInit2(&strm, 0, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return 1;
        uLong bound = deflateBound(&strm, sizeof message - 1);
        strm.next_in = (Bytef *)message;
        strm.avail_in = sizeof message - 1;
        strm.next_out = buffer;
        strm.avail_out = bound < sizeof buffer ? (uInt)bound : sizeof buffer;
        int ret = deflate(&strm, Z_FINISH);
        uLong written = strm.total_out;
        if (ret != Z_STREAM_END) { /* what the whole member takes, given room */
            strm.avail_out = sizeof buffer - (uInt)written;
            ret = deflate(&strm, Z_FINISH);
            printf("zgzip-svc: bound=%lu member=%lu result=truncated messages=%lu\n", bound, strm.total_out, messages);
        } else {
            printf("zgzip-svc: bound=%lu member=%lu result=complete messages=%lu\n", bound, written, messages);
        }
        deflateEnd(&strm);
        struct timespec pause = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
}
