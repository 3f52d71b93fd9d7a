// The program's own constructor starts the thread that calls answer() and reports, before main()
// runs; main() only waits.
#include <unistd.h>
#include "conformance.h"

int answer(int x);

static void *caller(void *unused) {
    (void)unused;
    for (;;) {
        report_value(answer(41), 42, 43);
        sleep_ms(10);
    }
    return NULL;
}

__attribute__((constructor)) static void start_caller(void) {
    pthread_t thread;
    pthread_create(&thread, NULL, caller, NULL);
}

int main(void) {
    for (;;) pause();
}
