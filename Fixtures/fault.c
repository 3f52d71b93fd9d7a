// Faults for real, so the kernel writes its fault report (debug.exception-trace): the witness the
// agent's health check trusts. `raise-segv` dies of SIGSEGV without a fault (no report).
//
// usage: fault segv | ill | fpe | thread-segv | raise-segv
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int zero = 0, seven = 7;

static void segv(void) { *(volatile int *)(long)zero = 1; }

static void *thread_segv(void *unused) {
    (void)unused;
    // Let the test see both threads before this one faults.
    usleep(200 * 1000);
    segv();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    printf("pid %d\n", getpid());
    fflush(stdout);
    if (strcmp(argv[1], "segv") == 0) segv();
    else if (strcmp(argv[1], "ill") == 0) __builtin_trap();
    else if (strcmp(argv[1], "fpe") == 0) printf("%d\n", seven / zero);
    else if (strcmp(argv[1], "raise-segv") == 0) raise(SIGSEGV);
    else if (strcmp(argv[1], "thread-segv") == 0) {
        pthread_t thread;
        pthread_create(&thread, NULL, thread_segv, NULL);
        pthread_join(thread, NULL);
    } else return 2;
    return 0;
}
