// A hostile local client of the agent's control socket: opens COUNT connections and holds them
// without sending a request (or, with --drip, sending one space a second and never a newline).
// After the first burst it prints "held H refused R" and the first refusal it was answered with;
// with --reconnect it then re-opens every connection the agent closes, every 100 ms, until killed,
// and prints "refused TOTAL" on SIGTERM.
// Usage: control_holder SOCKET COUNT [--reconnect] [--drip]
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static void on_term(int sig) { (void)sig; stopping = 1; }

static int open_connection(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval limit = { .tv_sec = 2 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    strncpy(address.sun_path, path, sizeof address.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { close(fd); return -1; }
    return fd;
}

// Whether the agent closed `fd` (its answer, if any, goes to `answer`).
static int closed_by_agent(int fd, char *answer, size_t size) {
    struct pollfd poller = { .fd = fd, .events = POLLIN };
    if (poll(&poller, 1, 0) <= 0) return 0;
    char buffer[4096];
    ssize_t total = 0, count;
    while ((count = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0) {
        if (answer && answer[0] == 0) {
            size_t length = (size_t)count < size - 1 ? (size_t)count : size - 1;
            memcpy(answer, buffer, length);
            answer[length] = 0;
            char *newline = strchr(answer, '\n');
            if (newline) *newline = 0;
        }
        total += count;
    }
    return count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s SOCKET COUNT [--reconnect] [--drip]\n", argv[0]); return 64; }
    const char *path = argv[1];
    int count = atoi(argv[2]), reconnect = 0, drip = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--reconnect") == 0) reconnect = 1;
        if (strcmp(argv[i], "--drip") == 0) drip = 1;
    }
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    int *fds = calloc((size_t)count, sizeof *fds);
    for (int i = 0; i < count; i++) fds[i] = open_connection(path);
    usleep(500 * 1000);
    char answer[512] = "";
    long held = 0, refused = 0;
    for (int i = 0; i < count; i++) {
        if (fds[i] < 0 || closed_by_agent(fds[i], answer, sizeof answer)) {
            refused++;
            if (fds[i] >= 0) close(fds[i]);
            fds[i] = -1;
        } else {
            held++;
        }
    }
    printf("held %ld refused %ld\n%s\n", held, refused, answer[0] ? answer : "(no answer)");
    fflush(stdout);
    long total = refused;
    time_t last_drip = time(NULL);
    while (!stopping) {
        usleep(100 * 1000);
        int send_drip = drip && time(NULL) != last_drip;
        if (send_drip) last_drip = time(NULL);
        for (int i = 0; i < count && !stopping; i++) {
            if (fds[i] >= 0 && closed_by_agent(fds[i], NULL, 0)) {
                close(fds[i]);
                fds[i] = -1;
                total++;
            }
            if (fds[i] < 0 && reconnect) fds[i] = open_connection(path);
            if (fds[i] >= 0 && send_drip) send(fds[i], " ", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    }
    printf("refused %ld\n", total);
    fflush(stdout);
    return 0;
}
