// A thread spins inside spin_until() until a line arrives on stdin (read by another thread); then
// it returns and ends. The main thread reports answer().
#include <unistd.h>
#include "conformance.h"

int answer(int x);
int spin_until(volatile int *flag);

static volatile int released;

static void *spinner(void *unused) {
    (void)unused;
    int value = spin_until(&released);
    if (value != 1) bad("the original spin_until() returned %d", value);
    report("LEFT");
    return NULL;
}

static void *releaser(void *unused) {
    (void)unused;
    char line[64];
    if (read(0, line, sizeof line) > 0) released = 1;
    return NULL;
}

int main(void) {
    pthread_t threads[2];
    pthread_create(&threads[0], NULL, spinner, NULL);
    pthread_create(&threads[1], NULL, releaser, NULL);
    for (;;) {
        report_value(answer(41), 42, 43);
        sleep_ms(10);
    }
}
