// Three threads spend all their time inside busy_loop; the main thread calls it briefly every
// 10 ms. PATCHED once every thread's latest call returned the fix's value, UNPATCHED once every
// one returned the original's; any other value is BAD.
#include <stdatomic.h>
#include "conformance.h"

int busy_loop(long spins);

enum { workers = 3 };
static atomic_int latest[workers];

static void *worker(void *slot) {
    atomic_int *mine = slot;
    for (;;) atomic_store(mine, busy_loop(3000000));
    return NULL;
}

int main(void) {
    pthread_t threads[workers];
    for (int i = 0; i < workers; i++) {
        atomic_store(&latest[i], busy_loop(1000));
        pthread_create(&threads[i], NULL, worker, &latest[i]);
    }
    for (;;) {
        int mine = busy_loop(1000), ones = mine == 1, twos = mine == 2;
        for (int i = 0; i < workers; i++) {
            int value = atomic_load(&latest[i]);
            if (value != 1 && value != 2) bad("busy_loop returned %d in thread %d", value, i);
            ones += value == 1;
            twos += value == 2;
        }
        if (mine != 1 && mine != 2) bad("busy_loop returned %d in the main thread", mine);
        if (ones == workers + 1) report("UNPATCHED");
        if (twos == workers + 1) report("PATCHED");
        sleep_ms(10);
    }
}
