// Sends a signal the ways a local user can, for the health-check threat tests: a death by a signal
// someone sent must never pass for a crash of the hotpatch.
//
// usage: signal_sender kill PID SIGNAL | tgkill PID TID SIGNAL | sigqueue PID SIGNAL
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int result;
    if (argc == 4 && strcmp(argv[1], "kill") == 0) {
        result = kill(atoi(argv[2]), atoi(argv[3]));
    } else if (argc == 5 && strcmp(argv[1], "tgkill") == 0) {
        result = (int)syscall(SYS_tgkill, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    } else if (argc == 4 && strcmp(argv[1], "sigqueue") == 0) {
        union sigval value = {.sival_int = 42};
        result = sigqueue(atoi(argv[2]), atoi(argv[3]), value);
    } else {
        fprintf(stderr, "usage: signal_sender kill PID SIGNAL | tgkill PID TID SIGNAL | sigqueue PID SIGNAL\n");
        return 2;
    }
    if (result != 0) {
        fprintf(stderr, "signal_sender: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    return 0;
}
