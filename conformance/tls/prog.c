// Four threads call count_call(); each checks that its own thread-locals (as the library reads
// them) rose by exactly one per call, whichever code ran.
#include "conformance.h"

int count_call(void);
int tls_calls_now(void);
int tls_flags_now(void);

static void *caller(void *unused) {
    (void)unused;
    for (;;) {
        int calls = tls_calls_now(), flags = tls_flags_now();
        int value = count_call();
        if (tls_calls_now() != calls + 1 || tls_flags_now() != flags + 1)
            bad("this thread's thread-locals went from %d/%d to %d/%d in one call", calls, flags, tls_calls_now(),
                tls_flags_now());
        else report_value(value, calls + 1, calls + 1 + 1000000);
        sleep_ms(10);
    }
    return NULL;
}

int main(void) {
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, caller, NULL);
    caller(NULL);
}
