// Runs argv[1] with the arguments after it from a second thread while the leader sleeps: the
// kernel ends the leader and gives the executing thread the process's id on the way (execve(2)
// in a multithreaded process), as a threaded service that spawns a helper by exec would.
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static char **arguments;

static void *run(void *unused) {
    (void)unused;
    execv(arguments[1], arguments + 1);
    perror("execv");
    _exit(127);
}

int main(int argc, char **argv) {
    pthread_t thread;
    if (argc < 2) {
        fprintf(stderr, "usage: thread_exec PROGRAM [ARGUMENT...]\n");
        return 2;
    }
    arguments = argv;
    if (pthread_create(&thread, NULL, run, NULL) != 0) return 1;
    for (;;) pause();
}
