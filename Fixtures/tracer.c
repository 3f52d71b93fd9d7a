// Another tracer: seizes a process's main thread with ptrace and holds it until killed, the way a
// debugger or strace would.
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: tracer PID\n"); return 2; }
    pid_t pid = (pid_t)atoi(argv[1]);
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) { perror("tracer: PTRACE_SEIZE"); return 1; }
    printf("tracing %d\n", pid);
    fflush(stdout);
    for (;;) pause();
}
