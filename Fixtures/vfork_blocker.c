// A thread that waits in vfork(2) for SECONDS (argv[1], default 3) while its child sleeps: the
// kernel's wait for the child is killable only, so the thread takes no ptrace stop until the child
// is gone. Prints "blocker TID" before the vfork and "vfork done" after it.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int seconds;

static void *blocker(void *unused) {
    (void)unused;
    printf("blocker %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    if (vfork() == 0) {
        struct timespec pause = {seconds, 0};
        syscall(SYS_nanosleep, &pause, NULL);
        _exit(0);
    }
    printf("vfork done\n");
    fflush(stdout);
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv) {
    pthread_t thread;
    seconds = argc > 1 ? atoi(argv[1]) : 3;
    if (pthread_create(&thread, NULL, blocker, NULL) != 0) return 1;
    for (;;) pause();
}
