// Three threads (the main one included) spend nearly all their time in redzone_spin, so the agent
// stops them there; a changed red zone prints BAD.
#include "conformance.h"

int answer(int x);
int redzone_spin(long iterations);

static void *spinner(void *unused) {
    (void)unused;
    for (;;) {
        if (redzone_spin(2000000) != 0) bad("the red zone of a thread in a leaf function changed");
    }
    return NULL;
}

int main(void) {
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, spinner, NULL);
    for (;;) {
        if (redzone_spin(200000) != 0) bad("the red zone of the main thread changed");
        report_value(answer(41), 42, 43);
    }
}
