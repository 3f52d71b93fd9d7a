// Preloaded into a program (LD_PRELOAD), sandboxes it a moment after it starts, as OpenSSH's
// privilege-separated child, QEMU's -sandbox or a browser's renderer do: a second thread installs,
// with SECCOMP_FILTER_FLAG_TSYNC so it reaches every thread at once, a filter that kills the process
// on mmap. The program itself is unchanged (same build-id), so its hotpatches still match.
//
// Environment (all optional):
//   LATE_SANDBOX_FILTER         kill-mmap (default): any mmap kills the process;
//                               kill-mmap-exec: an mmap asking for PROT_EXEC kills it (the program's
//                               own thread stacks and heap still work, so it can be armed at once)
//   LATE_SANDBOX_AFTER_THREADS  arm once the process has this many threads, this one included
//                               (default 1: at once); a kill-mmap filter must wait for the program to
//                               have created its threads, whose stacks are mmap'ed
//   LATE_SANDBOX_DELAY_US       install this long after arming (default 0)
//   LATE_SANDBOX_ON_TRACE       if 1, install as soon as the main thread (or this one) shows a tracer,
//                               even before the delay: the moment a patcher holds the main thread
//   LATE_SANDBOX_TSYNC          if 0, the filter covers this thread alone (no TSYNC), as a worker
//                               that sandboxes only itself does
//   LATE_SANDBOX_MAIN_ONLY      if 1, the filter covers the main thread alone (no TSYNC): this thread
//                               signals it (SIGRTMIN+3), and its handler installs the filter, as a
//                               program whose main thread sandboxes itself once its workers run does
// The filter is installed exactly once; a failure to install it exits the process with status 97.
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long number_from_environment(const char *name, long fallback) {
    const char *text = getenv(name);
    return text && *text ? strtol(text, NULL, 10) : fallback;
}

static long thread_count(void) {
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return 0;
    long count = 0;
    for (struct dirent *entry; (entry = readdir(tasks)) != NULL;)
        if (entry->d_name[0] != '.') count++;
    closedir(tasks);
    return count;
}

// Whether the TracerPid line of the status file at `path` names a tracer. open/read/close only:
// nothing here maps memory once the buffers exist.
static int traced(const char *path) {
    char text[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t length = read(fd, text, sizeof text - 1);
    close(fd);
    if (length <= 0) return 0;
    text[length] = 0;
    const char *line = strstr(text, "\nTracerPid:");
    return line && strtol(line + strlen("\nTracerPid:"), NULL, 10) != 0;
}

static long microseconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000000L + (now.tv_nsec - start->tv_nsec) / 1000;
}

// Kills a foreign architecture's calls, then loads the call number.
#define ARCH_CHECK_THEN_NUMBER \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)), \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS), \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))

static void install_filter(int exec_only, int synchronize) {
    struct sock_filter any_mmap[] = {
        ARCH_CHECK_THEN_NUMBER,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_filter executable_mmap[] = {
        ARCH_CHECK_THEN_NUMBER,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = exec_only
        ? (struct sock_fprog){ sizeof executable_mmap / sizeof executable_mmap[0], executable_mmap }
        : (struct sock_fprog){ sizeof any_mmap / sizeof any_mmap[0], any_mmap };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, synchronize ? SECCOMP_FILTER_FLAG_TSYNC : 0, &program) != 0) {
        perror("late_sandbox: seccomp");
        _exit(97);
    }
}

static int main_only_exec_only;

static void sandbox_main_thread(int signal) {
    (void)signal;
    install_filter(main_only_exec_only, 0);
}

static void *sandboxer(void *argument) {
    (void)argument;
    const char *filter = getenv("LATE_SANDBOX_FILTER");
    int exec_only = filter && strcmp(filter, "kill-mmap-exec") == 0;
    if (filter && !exec_only && strcmp(filter, "kill-mmap") != 0) {
        fprintf(stderr, "late_sandbox: unknown LATE_SANDBOX_FILTER %s\n", filter);
        _exit(98);
    }
    long threads = number_from_environment("LATE_SANDBOX_AFTER_THREADS", 1);
    long delay = number_from_environment("LATE_SANDBOX_DELAY_US", 0);
    int on_trace = number_from_environment("LATE_SANDBOX_ON_TRACE", 0) == 1;
    int synchronize = number_from_environment("LATE_SANDBOX_TSYNC", 1) != 0;
    int main_only = number_from_environment("LATE_SANDBOX_MAIN_ONLY", 0) == 1;
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    struct timespec tick = { 0, 20000 };
    while (thread_count() < threads) nanosleep(&tick, NULL);
    struct timespec armed;
    clock_gettime(CLOCK_MONOTONIC, &armed);
    while (microseconds_since(&armed) < delay) {
        if (on_trace && (traced("/proc/self/status") || traced("/proc/thread-self/status"))) break;
        nanosleep(&tick, NULL);
    }
    if (main_only) {
        main_only_exec_only = exec_only;
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = sandbox_main_thread;
        action.sa_flags = SA_RESTART;
        if (sigaction(SIGRTMIN + 3, &action, NULL) != 0 || syscall(SYS_tgkill, getpid(), getpid(), SIGRTMIN + 3) != 0) {
            perror("late_sandbox: signalling the main thread");
            _exit(95);
        }
    } else {
        install_filter(exec_only, synchronize);
    }
    for (;;) pause();
    return NULL;
}

__attribute__((constructor)) static void start_sandboxer(void) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, sandboxer, NULL) != 0) {
        perror("late_sandbox: pthread_create");
        _exit(96);
    }
}
