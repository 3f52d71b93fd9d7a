// A program with static data (a static global, a static function, a static local `counter.0`)
// and thread-locals in itself and in a library (target_state_lib), read and written by four
// threads. Each worker checks after every `step` that its own four thread-locals grew by what
// `step` says it added, and prints MISMATCH otherwise.
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

extern __thread long lib_tls_ie;
extern __thread long lib_tls_gd;
static __thread long exe_tls_gd;
static __thread long exe_tls_ie;
static int limit = 7;

static int scale(int value) { return value * limit; }

__attribute__((noinline)) int next_ticket(void) {
    static int counter;
    return ++counter;
}

/* Adds the same amount to each of this thread's thread-locals and says how much. */
__attribute__((noinline)) long step(void) {
    exe_tls_gd += 1; exe_tls_ie += 1; lib_tls_ie += 1; lib_tls_gd += 1;
    return 1;
}

static void *work(void *argument) {
    int worker = (int)(long)argument;
    long expected = 0;
    for (unsigned long round = 0;; round++) {
        expected += step();
        if (exe_tls_gd != expected || exe_tls_ie != expected || lib_tls_ie != expected || lib_tls_gd != expected) {
            printf("worker=%d MISMATCH expected=%ld exe_gd=%ld exe_ie=%ld lib_ie=%ld lib_gd=%ld\n", worker, expected,
                   exe_tls_gd, exe_tls_ie, lib_tls_ie, lib_tls_gd);
            fflush(stdout);
            expected = exe_tls_gd;
        }
        if (round % 50 == 0) { printf("worker=%d total=%ld\n", worker, expected); fflush(stdout); }
        usleep(1000);
    }
    return NULL;
}

int main(void) {
    pthread_t threads[4];
    for (long i = 0; i < 4; i++) pthread_create(&threads[i], NULL, work, (void *)i);
    printf("ready scale=%d\n", scale(1));
    fflush(stdout);
    for (;;) { printf("ticket=%d\n", next_ticket()); fflush(stdout); usleep(20000); }
}
