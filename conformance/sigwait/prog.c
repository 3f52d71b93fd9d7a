// Two threads wait for signals while the process is patched: one in sigwaitinfo(SIGUSR1), the main
// thread in sigsuspend (SIGUSR2, caught by a handler). Each wakes only for its signal, calls
// answer() and prints its state with its name. A wait that fails or ends without its signal is BAD.
// (sigwaitinfo passes on the EINTR that Linux returns from rt_sigtimedwait when a waiting thread is
// stopped and resumed, signal(7), unlike glibc's sigwait, which retries it: the agent must run the
// call again itself, so the program never sees its stop.)
#include <errno.h>
#include <signal.h>
#include "conformance.h"

int answer(int x);

static volatile sig_atomic_t usr2_caught;

static void on_usr2(int signal_number) { (void)signal_number; usr2_caught = 1; }

static void report_state(const char *waiter) {
    int value = answer(41);
    char line[64];
    if (value != 42 && value != 43) bad("answer(41) returned %d", value);
    snprintf(line, sizeof line, "%s %s", value == 43 ? "PATCHED" : "UNPATCHED", waiter);
    report(line);
}

static void *sigwaiter(void *unused) {
    (void)unused;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    for (;;) {
        siginfo_t info;
        int got = sigwaitinfo(&usr1, &info);
        if (got < 0) bad("sigwaitinfo failed: %s", strerror(errno));
        else if (got != SIGUSR1) bad("sigwaitinfo returned signal %d", got);
        else report_state("sigwait");
    }
    return NULL;
}

int main(void) {
    sigset_t blocked, during_suspend;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &blocked, &during_suspend);
    sigdelset(&during_suspend, SIGUSR2);
    sigaddset(&during_suspend, SIGUSR1);
    struct sigaction action = { .sa_handler = on_usr2 };
    sigaction(SIGUSR2, &action, NULL);
    pthread_t thread;
    pthread_create(&thread, NULL, sigwaiter, NULL);
    report("READY");
    for (;;) {
        usr2_caught = 0;
        sigsuspend(&during_suspend);
        if (!usr2_caught) bad("sigsuspend returned without SIGUSR2 (%s)", strerror(errno));
        else report_state("sigsuspend");
    }
}
