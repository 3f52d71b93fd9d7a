// Forks argv[1] children (each dies with this parent); each calls answer() every 100 ms and, when
// its state changes, appends "PID STATE" to the file argv[2] (one write, O_APPEND: lines never
// mix). The parent prints READY once every child runs, then waits.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "conformance.h"

int answer(int x);

static void child(int log) {
    const char *last = "";
    for (;;) {
        int value = answer(41);
        const char *state = value == 42 ? "UNPATCHED" : value == 43 ? "PATCHED" : "BAD";
        if (strcmp(state, last) != 0) {
            char line[64];
            int length = snprintf(line, sizeof line, "%d %s\n", (int)getpid(), state);
            if (write(log, line, length) != length) _exit(1);
            last = state;
        }
        sleep_ms(100);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) return 64;
    int count = atoi(argv[1]);
    int log = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0) { bad("cannot open %s", argv[2]); return 1; }
    for (int i = 0; i < count; i++) {
        pid_t pid = fork();
        if (pid < 0) { bad("fork %d failed", i); return 1; }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1) _exit(0);
            child(log);
        }
    }
    report("READY");
    for (;;) pause();
}
