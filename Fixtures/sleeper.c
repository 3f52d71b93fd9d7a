// An idle single-threaded process mapping the victim's code, for the many-processes benchmark:
// built from victim.c's functions, it sleeps and prints parse_length(100) on SIGUSR1. With
// --once it prints parse_length(100) first thing and exits: a short-lived program for the exec
// window benchmark. With --syscall-loop it makes system calls (getppid) without end: the tracee
// of the ptrace round-trip probe.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
__attribute__((noinline)) int parse_length(int n) { volatile int result = n; return result; }
__attribute__((noinline)) int banner_version(void) { volatile int version = 1; return version; }
static volatile sig_atomic_t asked;
static void on_usr1(int sig) { (void)sig; asked = 1; }
int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--once") == 0) {
        printf("parse_length(100)=%d\n", parse_length(100));
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--syscall-loop") == 0) {
        for (;;) getppid();
    }
    signal(SIGUSR1, on_usr1);
    for (;;) {
        pause();
        if (asked) { asked = 0; printf("parse_length(100)=%d\n", parse_length(100)); fflush(stdout); }
    }
}
