// A hostile local client of the agent's control socket: opens COUNT connections and holds them
// without sending a request (or, with --drip, sending one space a second and never a newline; or,
// with --request LINE, sending LINE and a newline on each, which makes the agent answer and close).
// Once all are connected it prints "opened COUNT"; on SIGUSR1 it then prints "held H refused R"
// (R: connections answered "agent busy" or not accepted at all) and the first answer it got;
// with --reconnect it then re-opens every connection the agent closes, every 100 ms (1 ms with
// --request), until killed, and prints "closed TOTAL" (connections the agent closed, or that could
// not connect) on SIGTERM.
// Usage: control_holder SOCKET COUNT [--reconnect] [--drip] [--request LINE]
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

static volatile sig_atomic_t stopping, reported;
static void on_term(int sig) { (void)sig; stopping = 1; }
static void on_usr1(int sig) { (void)sig; reported = 1; }

static const char *request;

static int open_connection(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval limit = { .tv_sec = 2 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    strncpy(address.sun_path, path, sizeof address.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { close(fd); return -1; }
    if (request) {
        send(fd, request, strlen(request), MSG_NOSIGNAL);
        send(fd, "\n", 1, MSG_NOSIGNAL);
    }
    return fd;
}

// Whether the agent closed `fd`; `*busy` is set when its answer was a busy refusal, and the first
// answer is kept in `answer` when one is given.
static int closed_by_agent(int fd, int *busy, char *answer, size_t size) {
    struct pollfd poller = { .fd = fd, .events = POLLIN };
    if (poll(&poller, 1, 0) <= 0) return 0;
    char buffer[4096];
    ssize_t count;
    int first = 1;
    while ((count = recv(fd, buffer, sizeof buffer - 1, MSG_DONTWAIT)) > 0) {
        buffer[count] = 0;
        if (first && busy) *busy = strstr(buffer, "agent busy") != NULL;
        if (first && answer && answer[0] == 0) {
            size_t length = strlen(buffer) < size - 1 ? strlen(buffer) : size - 1;
            memcpy(answer, buffer, length);
            answer[length] = 0;
            char *newline = strchr(answer, '\n');
            if (newline) *newline = 0;
        }
        first = 0;
    }
    return count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s SOCKET COUNT [--reconnect] [--drip] [--request LINE]\n", argv[0]); return 64; }
    const char *path = argv[1];
    int count = atoi(argv[2]), reconnect = 0, drip = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--reconnect") == 0) reconnect = 1;
        if (strcmp(argv[i], "--drip") == 0) drip = 1;
        if (strcmp(argv[i], "--request") == 0 && i + 1 < argc) request = argv[++i];
    }
    signal(SIGTERM, on_term);
    signal(SIGUSR1, on_usr1);
    signal(SIGPIPE, SIG_IGN);
    int *fds = calloc((size_t)count, sizeof *fds);
    for (int i = 0; i < count; i++) fds[i] = open_connection(path);
    printf("opened %d\n", count);
    fflush(stdout);
    // The agent accepts in order and answers a refusal at once: once the caller has had an answer on
    // a connection made after these, every refusal of these is in its socket. The caller says so
    // with SIGUSR1 (a fixed wait would miscount on a loaded machine).
    while (!reported) usleep(10 * 1000);
    char answer[512] = "";
    long held, refused = 0;
    for (int i = 0; i < count; i++) {
        int busy = 0;
        if (fds[i] < 0) {
            refused++;
        } else if (closed_by_agent(fds[i], &busy, answer, sizeof answer)) {
            close(fds[i]);
            fds[i] = -1;
            if (busy) refused++;
        }
    }
    held = count - refused;
    printf("held %ld refused %ld\n%s\n", held, refused, answer[0] ? answer : "(no answer)");
    fflush(stdout);
    long total = 0;
    for (int i = 0; i < count; i++) if (fds[i] < 0) total++;
    time_t last_drip = time(NULL);
    while (!stopping) {
        usleep(request ? 1000 : 100 * 1000);
        int send_drip = drip && time(NULL) != last_drip;
        if (send_drip) last_drip = time(NULL);
        for (int i = 0; i < count && !stopping; i++) {
            if (fds[i] >= 0 && closed_by_agent(fds[i], NULL, NULL, 0)) {
                close(fds[i]);
                fds[i] = -1;
                total++;
            }
            if (fds[i] < 0 && reconnect) fds[i] = open_connection(path);
            if (fds[i] >= 0 && send_drip) send(fds[i], " ", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    }
    printf("closed %ld\n", total);
    fflush(stdout);
    return 0;
}
