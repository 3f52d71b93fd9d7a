// A thread sits in stuck() (so a return address into it is on its stack) until a line arrives on
// stdin; then it returns and the thread ends. The main thread reports answer().
#include "conformance.h"

int answer(int x);
int stuck(void);

static void *holder(void *unused) {
    (void)unused;
    int value = stuck();
    if (value != 1) bad("the original stuck() returned %d", value);
    report("LEFT");
    return NULL;
}

int main(void) {
    pthread_t thread;
    pthread_create(&thread, NULL, holder, NULL);
    for (;;) {
        report_value(answer(41), 42, 43);
        sleep_ms(10);
    }
}
