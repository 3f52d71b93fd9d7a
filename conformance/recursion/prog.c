// Two threads compute sequence(27) over and over (thousands of frames of the old code on their
// stacks while the patch lands); the main thread computes sequence(20). A call in flight when the
// entry is redirected finishes its own frame in the old code, but its recursive calls from then on
// enter the fix, so it returns a mix of both sequences: at most one such value per thread for each
// change (the patch, the revert) is allowed; every other result must be Fibonacci's or Lucas's.
#include <stdatomic.h>
#include "conformance.h"

long sequence(long n);

static atomic_long latest[2];

// Counts a result that is neither sequence's (a call that straddled a change) for one thread.
static void straddled(int *count, long n, long value) {
    if (++*count > 2) bad("sequence(%ld) returned %ld, a mix of both, %d times in one thread", n, value, *count);
}

static void *worker(void *slot) {
    atomic_long *mine = slot;
    int mixes = 0;
    for (;;) {
        long value = sequence(27);
        if (value != 196418 && value != 439204) straddled(&mixes, 27, value);
        atomic_store(mine, value);
    }
    return NULL;
}

int main(void) {
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        atomic_store(&latest[i], sequence(27));
        pthread_create(&threads[i], NULL, worker, &latest[i]);
    }
    int mixes = 0;
    for (;;) {
        long value = sequence(20);
        if (value != 6765 && value != 15127) straddled(&mixes, 20, value);
        if (value == 6765 && atomic_load(&latest[0]) == 196418 && atomic_load(&latest[1]) == 196418) report("UNPATCHED");
        if (value == 15127 && atomic_load(&latest[0]) == 439204 && atomic_load(&latest[1]) == 439204) report("PATCHED");
        sleep_ms(10);
    }
}
