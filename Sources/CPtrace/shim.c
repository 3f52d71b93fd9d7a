#define _GNU_SOURCE
#include "CPtrace.h"
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

long cptrace_seize(pid_t tid, unsigned long options) { return ptrace(PTRACE_SEIZE, tid, 0, (void *)options); }
long cptrace_interrupt(pid_t tid) { return ptrace(PTRACE_INTERRUPT, tid, 0, 0); }
long cptrace_cont(pid_t tid, int signal) { return ptrace(PTRACE_CONT, tid, 0, (void *)(long)signal); }
long cptrace_detach(pid_t tid, int signal) { return ptrace(PTRACE_DETACH, tid, 0, (void *)(long)signal); }
long cptrace_syscall(pid_t tid, int signal) { return ptrace(PTRACE_SYSCALL, tid, 0, (void *)(long)signal); }
long cptrace_singlestep(pid_t tid, int signal) { return ptrace(PTRACE_SINGLESTEP, tid, 0, (void *)(long)signal); }
#ifdef PT_GETREGS
long cptrace_getregs(pid_t tid, cptrace_regs *regs) { return ptrace(PTRACE_GETREGS, tid, 0, regs); }
long cptrace_setregs(pid_t tid, const cptrace_regs *regs) { return ptrace(PTRACE_SETREGS, tid, 0, (void *)regs); }
#else
// Architectures without PTRACE_GETREGS (aarch64) reach the same block as the NT_PRSTATUS regset.
#include <elf.h>
#include <sys/uio.h>
long cptrace_getregs(pid_t tid, cptrace_regs *regs) {
    struct iovec io = { regs, sizeof *regs };
    return ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &io);
}
long cptrace_setregs(pid_t tid, const cptrace_regs *regs) {
    struct iovec io = { (void *)regs, sizeof *regs };
    return ptrace(PTRACE_SETREGSET, tid, (void *)NT_PRSTATUS, &io);
}
#endif
long cptrace_getsigmask(pid_t tid, uint64_t *mask) { return ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(*mask), mask); }
long cptrace_setsigmask(pid_t tid, uint64_t mask) { return ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(mask), &mask); }
long cptrace_geteventmsg(pid_t tid, unsigned long *message) { return ptrace(PTRACE_GETEVENTMSG, tid, 0, message); }
long cptrace_seccomp_get_filter(pid_t tid, unsigned long index, cptrace_bpf_insn *buffer) {
    return ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)index, buffer);
}

int cptrace_wifexited(int status) { return WIFEXITED(status); }
int cptrace_wexitstatus(int status) { return WEXITSTATUS(status); }
int cptrace_wifsignaled(int status) { return WIFSIGNALED(status); }
int cptrace_wtermsig(int status) { return WTERMSIG(status); }
int cptrace_wstopsig(int status) { return WSTOPSIG(status); }
int cptrace_wevent(int status) { return (status >> 16) & 0xff; }
int cptrace_tgkill(pid_t tgid, pid_t tid, int signal) { return (int)syscall(SYS_tgkill, tgid, tid, signal); }
int cptrace_kcmp_vm(pid_t a, pid_t b) { return (int)syscall(SYS_kcmp, a, b, 1 /* KCMP_VM */, 0, 0); }

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static void cptrace_deadline_noop(int signal) { (void)signal; }
static pthread_once_t cptrace_deadline_once = PTHREAD_ONCE_INIT;
static __thread int cptrace_deadline_ready;
static __thread timer_t cptrace_deadline_timer;

static int cptrace_deadline_signal(void) { return SIGRTMIN + 5; }

static void cptrace_deadline_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = cptrace_deadline_noop;  // no SA_RESTART: the blocked call returns EINTR
    sigemptyset(&action.sa_mask);
    sigaction(cptrace_deadline_signal(), &action, NULL);
}

int cptrace_deadline_arm(long long nanoseconds) {
    pthread_once(&cptrace_deadline_once, cptrace_deadline_install);
    if (!cptrace_deadline_ready) {
        struct sigevent event;
        memset(&event, 0, sizeof event);
        event.sigev_notify = SIGEV_THREAD_ID;
        event.sigev_signo = cptrace_deadline_signal();
        event._sigev_un._tid = (pid_t)syscall(SYS_gettid);
        if (timer_create(CLOCK_MONOTONIC, &event, &cptrace_deadline_timer) != 0) return -1;
        cptrace_deadline_ready = 1;
        sigset_t unblock;
        sigemptyset(&unblock);
        sigaddset(&unblock, cptrace_deadline_signal());
        pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
    }
    if (nanoseconds < 1000) nanoseconds = 1000;
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    spec.it_value.tv_sec = nanoseconds / 1000000000LL;
    spec.it_value.tv_nsec = nanoseconds % 1000000000LL;
    // Re-fire every millisecond until disarmed: a signal that lands just before waitpid blocks
    // would otherwise be lost and the wait would never end.
    spec.it_interval.tv_nsec = 1000000L;
    return timer_settime(cptrace_deadline_timer, 0, &spec, NULL);
}

int cptrace_deadline_disarm(void) {
    if (!cptrace_deadline_ready) return 0;
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    return timer_settime(cptrace_deadline_timer, 0, &spec, NULL);
}

#include <poll.h>
#include <sys/prctl.h>

pid_t cptrace_start_watchdog(int heartbeat_fd, pid_t agent, int timeout_ms) {
    pid_t child = fork();
    if (child != 0) return child;
    // The child: async-signal-safe calls only (the parent has threads).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != agent) _exit(0);
    prctl(PR_SET_NAME, "hotpatch-gatedog");
    if (heartbeat_fd > 3) syscall(SYS_close_range, 3, heartbeat_fd - 1, 0);
    syscall(SYS_close_range, heartbeat_fd + 1, ~0U, 0);
    char buffer[64];
    for (;;) {
        struct pollfd wait = { .fd = heartbeat_fd, .events = POLLIN };
        int ready = poll(&wait, 1, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        if (ready == 0) {
            kill(agent, SIGKILL);
            _exit(2);
        }
        ssize_t got = read(heartbeat_fd, buffer, sizeof buffer);
        if (got == 0) _exit(0);
        if (got < 0 && errno != EINTR && errno != EAGAIN) _exit(1);
    }
}

#include <malloc.h>

int cptrace_limit_malloc_arenas(int arenas) { return mallopt(M_ARENA_MAX, arenas); }

int cptrace_trim_heap(void) { return malloc_trim(0); }

#include <sched.h>

static __thread cpu_set_t cptrace_kept_cpus;
static __thread int cptrace_kept;

int cptrace_pin_with(pid_t other) {
    int cpu = sched_getcpu();
    if (cpu < 0) return -1;
    if (sched_getaffinity(0, sizeof cptrace_kept_cpus, &cptrace_kept_cpus) != 0) return -1;
    cptrace_kept = 1;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(other, sizeof one, &one) != 0) return -1;
    if (sched_setaffinity(0, sizeof one, &one) != 0) return -1;
    return cpu;
}

int cptrace_unpin(void) {
    if (!cptrace_kept) return 0;
    cptrace_kept = 0;
    return sched_setaffinity(0, sizeof cptrace_kept_cpus, &cptrace_kept_cpus);
}

#include <sys/ioctl.h>
#include <string.h>

// The kernel's struct procmap_query (linux/fs.h, 6.11), spelled out for older headers.
struct cptrace_procmap_query {
    unsigned long long size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
    unsigned int dev_major, dev_minor, vma_name_size, build_id_size;
    unsigned long long vma_name_addr, build_id_addr;
};
#define CPTRACE_PROCMAP_QUERY _IOWR('f', 17, struct cptrace_procmap_query)

int cptrace_query_mapping(int maps_fd, unsigned long long address, unsigned long long required, cptrace_mapping *out) {
    struct cptrace_procmap_query query;
    memset(&query, 0, sizeof query);
    query.size = sizeof query;
    query.query_flags = required;
    query.query_addr = address;
    if (ioctl(maps_fd, CPTRACE_PROCMAP_QUERY, &query) != 0) return -1;
    out->start = query.vma_start;
    out->end = query.vma_end;
    out->offset = query.vma_offset;
    out->inode = query.inode;
    out->flags = query.vma_flags;
    out->device_major = query.dev_major;
    out->device_minor = query.dev_minor;
    return 0;
}

long cptrace_getdents64(int fd, void *buffer, unsigned long size) {
    return syscall(SYS_getdents64, fd, buffer, size);
}
