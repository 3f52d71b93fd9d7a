// One thread, nearly always asleep in nanosleep(1 s) (restarted by the kernel with the time left
// when interrupted). A sleep that fails with EINTR or ends early is BAD.
#include <errno.h>
#include "conformance.h"

int answer(int x);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void) {
    for (;;) {
        report_value(answer(41), 42, 43);
        struct timespec second = { 1, 0 };
        double started = now();
        if (nanosleep(&second, NULL) != 0) bad("nanosleep failed: %s", strerror(errno));
        else if (now() - started < 0.999) bad("nanosleep(1 s) returned after %.3f s", now() - started);
    }
}
