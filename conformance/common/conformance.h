// Shared by the conformance programs (see docs/CONFORMANCE.md): every program reports its state as
// lines on stdout, "UNPATCHED" or "PATCHED" (sometimes with a detail), printed when the state
// changes; "BAD ..." when what it computed is right in neither state. scripts/conformance reads
// the last line.
#ifndef CONFORMANCE_H
#define CONFORMANCE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

// Prints LINE when it differs from the last line printed (by any thread).
__attribute__((unused)) static void report(const char *line) {
    static char last[256];
    pthread_mutex_lock(&report_lock);
    if (strcmp(last, line) != 0) {
        snprintf(last, sizeof last, "%s", line);
        printf("%s\n", line);
        fflush(stdout);
    }
    pthread_mutex_unlock(&report_lock);
}

// Prints a BAD line (always): the behaviour is wrong, whatever the patch state.
__attribute__((unused)) static void bad(const char *format, ...) {
    char text[256];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(text, sizeof text, format, arguments);
    va_end(arguments);
    pthread_mutex_lock(&report_lock);
    printf("BAD %s\n", text);
    fflush(stdout);
    pthread_mutex_unlock(&report_lock);
}

// Reports VALUE as UNPATCHED when it is ORIGINAL, PATCHED when it is FIXED, BAD otherwise.
__attribute__((unused)) static void report_value(long value, long original, long fixed) {
    if (value == original) report("UNPATCHED");
    else if (value == fixed) report("PATCHED");
    else bad("got %ld, expected %ld (unpatched) or %ld (patched)", value, original, fixed);
}

// Sleeps MILLISECONDS.
__attribute__((unused)) static void sleep_ms(long milliseconds) {
    struct timespec delay = { milliseconds / 1000, (milliseconds % 1000) * 1000000L };
    while (nanosleep(&delay, &delay) != 0) {}
}

#endif
