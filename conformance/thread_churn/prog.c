// Threads are created and end all the time (four at once, each calling answer() once and
// starting its successor before it ends), so threads appear and vanish while the agent stops
// every thread of the process.
#include <stdlib.h>
#include "conformance.h"

int answer(int x);

static void *short_lived(void *unused) {
    (void)unused;
    report_value(answer(41), 42, 43);
    sleep_ms(1);
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    pthread_t next;
    while (pthread_create(&next, &detached, short_lived, NULL) != 0) sleep_ms(1);
    return NULL;
}

int main(void) {
    for (int i = 0; i < 4; i++) short_lived(NULL);
    for (;;) sleep_ms(1000);
}
