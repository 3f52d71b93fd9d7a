#ifndef CPTRACE_H
#define CPTRACE_H

// Non-variadic wrappers around ptrace(2) and the wait(2) status macros. Swift cannot call
// variadic C functions nor expand function-like macros; the Engine's Ptrace.swift is the only
// caller. Every wrapper returns what ptrace returns (-1 with errno on failure).

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>
#include <signal.h>

/// The general-purpose registers of one thread (struct user_regs_struct), the block the Engine
/// reads by word index as its Architecture describes it.
typedef struct user_regs_struct cptrace_regs;

/// One classic-BPF instruction of a seccomp filter (struct sock_filter).
typedef struct {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
} cptrace_bpf_insn;

long cptrace_seize(pid_t tid, unsigned long options);
long cptrace_interrupt(pid_t tid);
long cptrace_cont(pid_t tid, int signal);
long cptrace_detach(pid_t tid, int signal);
/// Resumes until the next system call entry or exit (or signal). PTRACE_SYSCALL.
long cptrace_syscall(pid_t tid, int signal);
long cptrace_singlestep(pid_t tid, int signal);
long cptrace_getregs(pid_t tid, cptrace_regs *regs);
long cptrace_setregs(pid_t tid, const cptrace_regs *regs);
long cptrace_getsigmask(pid_t tid, uint64_t *mask);
long cptrace_setsigmask(pid_t tid, uint64_t mask);
long cptrace_geteventmsg(pid_t tid, unsigned long *message);
/// Copies filter number `index` (0 = most recently installed) into `buffer` (NULL asks for its
/// length); returns the number of instructions. PTRACE_SECCOMP_GET_FILTER.
long cptrace_seccomp_get_filter(pid_t tid, unsigned long index, cptrace_bpf_insn *buffer);

int cptrace_wifexited(int status);
int cptrace_wexitstatus(int status);
int cptrace_wifsignaled(int status);
int cptrace_wtermsig(int status);
int cptrace_wstopsig(int status);
/// The PTRACE_EVENT_* number of a ptrace-stop (status >> 16), 0 for a plain stop.
int cptrace_wevent(int status);

/// PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC, PTRACE_EVENT_STOP.
enum {
    CPTRACE_EVENT_CLONE = 3,
    CPTRACE_EVENT_EXEC = 4,
    CPTRACE_EVENT_STOP = 128,
};

/// PTRACE_O_TRACESYSGOOD (system call stops report SIGTRAP|0x80), PTRACE_O_TRACECLONE,
/// PTRACE_O_TRACEEXEC (a stop at the end of a successful execve, not a SIGTRAP).
enum { CPTRACE_O_TRACESYSGOOD = 0x00000001, CPTRACE_O_TRACECLONE = 0x00000008, CPTRACE_O_TRACEEXEC = 0x00000010 };

/// Forks a watchdog process that kills `agent` with SIGKILL when nothing arrives on
/// `heartbeat_fd` (a pipe's read end) for `timeout_ms` milliseconds, and exits when the pipe's
/// other end closes (the agent ended) or the agent dies (PR_SET_PDEATHSIG). The child closes every
/// other descriptor at once, so it never holds what the agent's death must release (a fanotify
/// group whose pending permission events are then allowed). Only async-signal-safe calls run in
/// the child. Returns the child's pid, or -1 with errno set.
pid_t cptrace_start_watchdog(int heartbeat_fd, pid_t agent, int timeout_ms);

/// tgkill(2), so a signal reaches exactly one thread.
int cptrace_tgkill(pid_t tgid, pid_t tid, int signal);
/// kcmp(2) with KCMP_VM: 0 when processes `a` and `b` share one address space; -1 with errno set on failure.
int cptrace_kcmp_vm(pid_t a, pid_t b);

/// mallopt(M_ARENA_MAX, arenas): at most `arenas` malloc arenas for the whole process. Returns 1 on
/// success, 0 on error.
int cptrace_limit_malloc_arenas(int arenas);

/// malloc_trim(0): gives the kernel back every free page of every arena. Returns 1 when memory was
/// released, 0 otherwise.
int cptrace_trim_heap(void);
/// Pins the calling thread and process `other` to the CPU the calling thread runs on, keeping the
/// calling thread's own CPU set for `cptrace_unpin`. Returns that CPU, or -1 with errno set.
int cptrace_pin_with(pid_t other);
/// Gives the calling thread back the CPU set `cptrace_pin_with` kept. Returns 0, or -1 with errno set.
int cptrace_unpin(void);

/// A per-thread deadline for blocking waits: arms a CLOCK_MONOTONIC timer that sends a real-time
/// signal to the calling thread after `nanoseconds`, so a blocking waitpid(2) returns EINTR then.
/// The signal's handler does nothing and is installed without SA_RESTART. Returns 0 or -1/errno.
int cptrace_deadline_arm(long long nanoseconds);
/// Disarms the calling thread's deadline timer.
int cptrace_deadline_disarm(void);

/// One memory mapping as the kernel's PROCMAP_QUERY describes it.
typedef struct {
    unsigned long long start, end, offset, inode;
    /// PROCMAP_QUERY_VMA_* bits: 1 readable, 2 writable, 4 executable, 8 shared.
    unsigned long long flags;
    unsigned int device_major, device_minor;
} cptrace_mapping;

/// Asks the kernel (PROCMAP_QUERY on `maps_fd`, an open /proc/PID/maps; Linux 6.11 and later) for
/// the mapping that covers `address` and has every PROCMAP_QUERY_VMA_* bit of `required`
/// (file-backed: 0x20). Returns 0, or -1 with errno set (ENOENT: no such mapping; ENOTTY or
/// EINVAL: the kernel cannot answer).
int cptrace_query_mapping(int maps_fd, unsigned long long address, unsigned long long required, cptrace_mapping *out);

/// getdents64(2) on the open directory `fd` into `buffer`: bytes of struct linux_dirent64 entries
/// filled, 0 at the directory's end, -1 with errno set.
long cptrace_getdents64(int fd, void *buffer, unsigned long size);

#endif
