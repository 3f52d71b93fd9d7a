// Threads blocked in the calls Linux fails with EINTR after a stop (sigwaitinfo, epoll_wait,
// semop), each counting the EINTRs it sees; prints the counts every 20 ms. No signal handler is
// installed, so no EINTR is the program's own.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/sem.h>
#include <unistd.h>

static volatile int sigwait_eintr, epoll_eintr, semop_eintr;

static void *wait_for_signal(void *unused) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    for (;;) {
        siginfo_t info;
        if (sigwaitinfo(&set, &info) < 0 && errno == EINTR) sigwait_eintr++;
    }
    return unused;
}

static void *wait_for_events(void *unused) {
    int fd = epoll_create1(0);
    for (;;) {
        struct epoll_event event;
        if (epoll_wait(fd, &event, 1, -1) < 0 && errno == EINTR) epoll_eintr++;
    }
    return unused;
}

static void *wait_for_semaphore(void *unused) {
    int id = semget(IPC_PRIVATE, 1, 0600);
    struct sembuf take = {0, -1, 0};
    for (;;) {
        if (semop(id, &take, 1) < 0 && errno == EINTR) semop_eintr++;
    }
    return unused;
}

int main(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t threads[3];
    pthread_create(&threads[0], NULL, wait_for_signal, NULL);
    pthread_create(&threads[1], NULL, wait_for_events, NULL);
    pthread_create(&threads[2], NULL, wait_for_semaphore, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("ready");
    for (;;) {
        printf("sigwaitinfo=%d epoll_wait=%d semop=%d\n", sigwait_eintr, epoll_eintr, semop_eintr);
        usleep(20000);
    }
}
