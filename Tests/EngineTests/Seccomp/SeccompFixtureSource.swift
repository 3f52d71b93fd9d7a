/// C source of the seccomp fixture: filters written by hand the way systemd/libseccomp emit them,
/// the kernel's verdict on candidate filters, and real calls made under installed filters.
/// Compiled with `cc` at test time (see SeccompFixture); the output format is described at its top.
let seccompFixtureSource = #"""
/* Seccomp fixture for hotpatch-agent tests: builds filters by hand (as systemd/libseccomp emit them),
 * prints them, asks the kernel whether it accepts candidate filters, and runs calls under filters.
 * Output lines:
 *   filter NAME COUNT           followed by COUNT lines "code jt jf k" (hex)
 *   load NAME accepted|rejected ERRNO
 *   call NAME FILTERS ARCH NR A0 A1 A2 A3 A4 A5   (hex; FILTERS comma-separated, in install order)
 *   result NAME ok RET | errno E | trap DATA | signal SIG
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARCH BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define ALLOW RET(SECCOMP_RET_ALLOW)

typedef struct { const char *name; unsigned short len; struct sock_filter *code; } named_filter;

/* systemd 252 MemoryDenyWriteExecute= as libseccomp compiles it: arch check, x32 guard, then
 * mmap: errno(EPERM) when (prot & (PROT_WRITE|PROT_EXEC)) == (PROT_WRITE|PROT_EXEC) (masked 64-bit
 * compare: high word first), mprotect/pkey_mprotect: errno(EPERM) when prot & PROT_EXEC. */
static struct sock_filter mdwe[] = {
    LD_ARCH,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    RET(SECCOMP_RET_KILL_PROCESS),
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
    RET(SECCOMP_RET_KILL_PROCESS),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 3, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 9, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pkey_mprotect, 8, 0),
    ALLOW,
    /* mmap: 64-bit masked equality on args[2], high word first */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(2)),
    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 4, 0),
    ALLOW,
    /* mprotect, pkey_mprotect */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 1, 0),
    ALLOW,
    RET(SECCOMP_RET_ERRNO | EPERM),
};

/* A container-style sandbox: foreign arch killed, openat kills the process, memfd_create EACCES. */
static struct sock_filter sandbox[] = {
    LD_ARCH,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    RET(SECCOMP_RET_KILL_PROCESS),
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 1),
    RET(SECCOMP_RET_KILL_PROCESS),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 1),
    RET(SECCOMP_RET_ERRNO | EACCES),
    ALLOW,
};

/* getpid traps with data 0x42; getppid gets errno 5000 (the kernel caps it at MAX_ERRNO 4095). */
static struct sock_filter trap_and_big_errno[] = {
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpid, 0, 1),
    RET(SECCOMP_RET_TRAP | 0x42),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
    RET(SECCOMP_RET_ERRNO | 5000),
    ALLOW,
};

/* getuid: A = nr / X with X = 0 at run time. */
static struct sock_filter divide_by_zero_x[] = {
    BPF_STMT(BPF_LDX | BPF_IMM, 0),
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getuid, 0, 2),
    BPF_STMT(BPF_ALU | BPF_DIV | BPF_X, 0),
    BPF_STMT(BPF_RET | BPF_A, 0),
    ALLOW,
};

/* getgid: errno(1 << X) with X = 33: shows how a shift by X >= 32 behaves. */
static struct sock_filter shift_by_x[] = {
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getgid, 0, 5),
    BPF_STMT(BPF_LDX | BPF_IMM, 33),
    BPF_STMT(BPF_LD | BPF_IMM, 1),
    BPF_STMT(BPF_ALU | BPF_LSH | BPF_X, 0),
    BPF_STMT(BPF_ALU | BPF_OR | BPF_K, SECCOMP_RET_ERRNO),
    BPF_STMT(BPF_RET | BPF_A, 0),
    ALLOW,
};

/* getpgrp: errno(len) through LDX LEN, TXA; scratch memory round trip on the way. */
static struct sock_filter length_and_memory[] = {
    LD_NR,
    BPF_STMT(BPF_ST, 3),
    BPF_STMT(BPF_LDX | BPF_MEM, 3),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpgrp, 0, 5),
    BPF_STMT(BPF_LDX | BPF_W | BPF_LEN, 0),
    BPF_STMT(BPF_MISC | BPF_TXA, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 0, 2),
    BPF_STMT(BPF_ALU | BPF_OR | BPF_K, SECCOMP_RET_ERRNO),
    BPF_STMT(BPF_RET | BPF_A, 0),
    ALLOW,
};

/* gettid: an unknown action value above LOG (0x7ffe0000), and a plain LOG. */
static struct sock_filter unknown_action[] = {
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_gettid, 0, 1),
    RET(0x7ffe0000),
    ALLOW,
};
static struct sock_filter log_gettid[] = {
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_gettid, 0, 1),
    RET(SECCOMP_RET_LOG),
    ALLOW,
};
/* sched_yield: two filters return errno 1 and errno 2: equal actions, the newest filter wins. */
static struct sock_filter yield_errno1[] = {
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sched_yield, 0, 1),
    RET(SECCOMP_RET_ERRNO | 1),
    ALLOW,
};
static struct sock_filter yield_errno2[] = {
    LD_NR,
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sched_yield, 0, 1),
    RET(SECCOMP_RET_ERRNO | 2),
    ALLOW,
};

/* Candidates for the kernel's load-time checks. */
static struct sock_filter c_mod_k[] = { LD_NR, BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, 3), ALLOW };
static struct sock_filter c_div_k0[] = { LD_NR, BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), ALLOW };
static struct sock_filter c_lsh_k31[] = { LD_NR, BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 31), ALLOW };
static struct sock_filter c_lsh_k32[] = { LD_NR, BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 32), ALLOW };
static struct sock_filter c_rsh_k40[] = { LD_NR, BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 40), ALLOW };
static struct sock_filter c_ld_misaligned[] = { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 2), ALLOW };
static struct sock_filter c_ld_64[] = { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 64), ALLOW };
static struct sock_filter c_ld_60[] = { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 60), ALLOW };
static struct sock_filter c_ld_half[] = { BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0), ALLOW };
static struct sock_filter c_ld_ind[] = { BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0), ALLOW };
static struct sock_filter c_ret_x[] = { BPF_STMT(BPF_RET | BPF_X, 0) };
static struct sock_filter c_neg[] = { LD_NR, BPF_STMT(BPF_ALU | BPF_NEG, 0), ALLOW };
static struct sock_filter c_neg_x[] = { LD_NR, BPF_STMT(BPF_ALU | BPF_NEG | BPF_X, 0), ALLOW };
static struct sock_filter c_unknown_code[] = { { 0xff, 0, 0, 0 }, ALLOW };
static struct sock_filter c_mem_unset[] = { BPF_STMT(BPF_LD | BPF_MEM, 0), ALLOW };
static struct sock_filter c_mem_set[] = { BPF_STMT(BPF_ST, 0), BPF_STMT(BPF_LDX | BPF_MEM, 0), ALLOW };
static struct sock_filter c_mem_one_branch[] = {
    LD_NR, BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1), BPF_STMT(BPF_ST, 5),
    BPF_STMT(BPF_LD | BPF_MEM, 5), ALLOW };
static struct sock_filter c_mem_both_branches[] = {
    LD_NR, BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 2), BPF_STMT(BPF_ST, 5),
    BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0), BPF_STMT(BPF_STX, 5), BPF_STMT(BPF_LD | BPF_MEM, 5), ALLOW };
static struct sock_filter c_mem_16[] = { BPF_STMT(BPF_ST, 16), ALLOW };
static struct sock_filter c_jump_out[] = { LD_NR, BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 0), ALLOW };
static struct sock_filter c_ja_out[] = { BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0), ALLOW };
static struct sock_filter c_ja_last[] = { BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0), ALLOW };
static struct sock_filter c_no_ret[] = { ALLOW, LD_NR };
static struct sock_filter c_jset_x[] = { LD_NR, BPF_JUMP(BPF_JMP | BPF_JSET | BPF_X, 0, 0, 0), ALLOW };
static struct sock_filter c_ret_big[4096];
static struct sock_filter c_too_long[4097];

#define F(x) { #x, sizeof(x) / sizeof((x)[0]), x }
static named_filter filters[] = {
    F(mdwe), F(sandbox), F(trap_and_big_errno), F(divide_by_zero_x), F(shift_by_x),
    F(length_and_memory), F(unknown_action), F(log_gettid), F(yield_errno1), F(yield_errno2),
};
static named_filter candidates[] = {
    F(c_mod_k), F(c_div_k0), F(c_lsh_k31), F(c_lsh_k32), F(c_rsh_k40), F(c_ld_misaligned), F(c_ld_64),
    F(c_ld_60), F(c_ld_half), F(c_ld_ind), F(c_ret_x), F(c_neg), F(c_neg_x), F(c_unknown_code),
    F(c_mem_unset), F(c_mem_set), F(c_mem_one_branch), F(c_mem_both_branches), F(c_mem_16),
    F(c_jump_out), F(c_ja_out), F(c_ja_last), F(c_no_ret), F(c_jset_x), F(c_ret_big), F(c_too_long),
};

static void print_filter(const named_filter *f) {
    printf("filter %s %u\n", f->name, f->len);
    for (unsigned i = 0; i < f->len; i++)
        printf("%x %x %x %x\n", f->code[i].code, f->code[i].jt, f->code[i].jf, f->code[i].k);
}

static int install(const named_filter *f) {
    struct sock_fprog prog = { f->len, f->code };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

static const named_filter *find(const char *name) {
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (strcmp(filters[i].name, name) == 0) return &filters[i];
    abort();
}

static void say(const char *text) { (void)!write(1, text, strlen(text)); }

static void on_sigsys(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)context;
    char line[64];
    snprintf(line, sizeof line, "trap %x\n", info->si_errno);
    say(line);
    _exit(0);
}

/* Runs one call in a child under FILTERS (comma-separated, install order). nr < 0: i386 getpid. */
static void run(const char *name, const char *filter_list, long nr, long a0, long a1, long a2, long a3,
                long a4, long a5) {
    char line[256];
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        struct sigaction sa = { 0 };
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSYS, &sa, NULL);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(90);
        char list[128];
        snprintf(list, sizeof list, "%s", filter_list);
        for (char *save = NULL, *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save))
            if (install(find(item)) != 0) _exit(91);
        snprintf(line, sizeof line, "result %s ", name);
        say(line);
        long r;
        if (nr < 0) {
            /* The i386 entry point: getpid is 20 there; seccomp sees AUDIT_ARCH_I386. */
            __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
            if (r < 0 && r > -4096) { errno = (int)-r; r = -1; }
        } else {
            r = syscall(nr, a0, a1, a2, a3, a4, a5);
        }
        if (r == -1) snprintf(line, sizeof line, "errno %x\n", errno);
        else snprintf(line, sizeof line, "ok %lx\n", r);
        say(line);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status)) {
        snprintf(line, sizeof line, "signal %x\n", WTERMSIG(status));
        say(line);
    } else if (WEXITSTATUS(status) != 0) {
        snprintf(line, sizeof line, "result %s exit %x\n", name, WEXITSTATUS(status));
        say(line);
    }
    unsigned arch = nr < 0 ? AUDIT_ARCH_I386 : AUDIT_ARCH_X86_64;
    printf("call %s %s %x %lx %lx %lx %lx %lx %lx %lx\n", name, filter_list, arch, nr < 0 ? 20 : nr, a0, a1, a2,
           a3, a4, a5);
    fflush(stdout);
}

int main(void) {
    for (int i = 0; i < 4096; i++) c_ret_big[i] = (struct sock_filter)ALLOW;
    for (int i = 0; i < 4097; i++) c_too_long[i] = (struct sock_filter)ALLOW;
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) print_filter(&filters[i]);
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        print_filter(&candidates[i]);
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) {
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            _exit(install(&candidates[i]) == 0 ? 0 : errno);
        }
        int status;
        waitpid(child, &status, 0);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
        printf("load %s %s %x\n", candidates[i].name, code == 0 ? "accepted" : "rejected", code);
    }

    /* A page and a descriptor prepared before any filter: mprotect and close act on them. */
    void *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = dup(0);
    long p = (long)page;
    long anon = MAP_PRIVATE | MAP_ANONYMOUS;
    run("mmap_rx", "mdwe,sandbox", __NR_mmap, 0, 4096, PROT_READ | PROT_EXEC, anon, -1, 0);
    run("mmap_rw", "mdwe,sandbox", __NR_mmap, 0, 4096, PROT_READ | PROT_WRITE, anon, -1, 0);
    run("mmap_rwx", "mdwe,sandbox", __NR_mmap, 0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, anon, -1, 0);
    run("mmap_wx_high_bits", "mdwe,sandbox", __NR_mmap, 0, 4096, 0x100000000L | PROT_WRITE | PROT_EXEC, anon, -1, 0);
    run("mprotect_rx", "mdwe,sandbox", __NR_mprotect, p, 4096, PROT_READ | PROT_EXEC, 0, 0, 0);
    run("mprotect_r", "mdwe,sandbox", __NR_mprotect, p, 4096, PROT_READ, 0, 0, 0);
    run("pkey_mprotect_x", "mdwe,sandbox", __NR_pkey_mprotect, p, 4096, PROT_EXEC, -1, 0, 0);
    run("pkey_mprotect_r", "mdwe,sandbox", __NR_pkey_mprotect, p, 4096, PROT_READ, -1, 0, 0);
    run("openat", "mdwe,sandbox", __NR_openat, AT_FDCWD, (long)"/", O_RDONLY, 0, 0, 0);
    run("memfd_create", "mdwe,sandbox", __NR_memfd_create, (long)"patch", 0, 0, 0, 0, 0);
    run("close", "mdwe,sandbox", __NR_close, fd, 0, 0, 0, 0, 0);
    run("munmap", "mdwe,sandbox", __NR_munmap, p, 4096, 0, 0, 0, 0);
    run("foreign_arch", "mdwe", -1, 0, 0, 0, 0, 0, 0);
    run("trap", "trap_and_big_errno", __NR_getpid, 0, 0, 0, 0, 0, 0);
    run("errno_capped", "trap_and_big_errno", __NR_getppid, 0, 0, 0, 0, 0, 0);
    run("divide_by_zero", "divide_by_zero_x", __NR_getuid, 0, 0, 0, 0, 0, 0);
    run("shift_by_33", "shift_by_x", __NR_getgid, 0, 0, 0, 0, 0, 0);
    run("length", "length_and_memory", __NR_getpgrp, 0, 0, 0, 0, 0, 0);
    run("unknown_alone", "unknown_action", __NR_gettid, 0, 0, 0, 0, 0, 0);
    run("unknown_and_log", "unknown_action,log_gettid", __NR_gettid, 0, 0, 0, 0, 0, 0);
    run("equal_actions", "yield_errno1,yield_errno2", __NR_sched_yield, 0, 0, 0, 0, 0, 0);
    return 0;
}
"""#
