// The victim of victim.c, which on SIGWINCH gives up root for good (all uids and gids become
// nobody's), as a daemon does that starts as root and drops privileges later. For the health-check
// threat tests: a process patched as root and signalled by its new user must not count as a crash.
#define main victim_main
#include "victim.c"
#undef main

static void drop_privileges(int sig) {
    (void)sig;
    // glibc applies these to every thread of the process.
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(3);
}

int main(int argc, char **argv) {
    signal(SIGWINCH, drop_privileges);
    return victim_main(argc, argv);
}
