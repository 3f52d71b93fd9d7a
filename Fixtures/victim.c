// A multi-threaded "service" for hotpatch tests and the demo. Worker threads call the functions
// that hotpatches replace in a tight loop and abort on any result no version of the code can give,
// so a torn patch shows up as a crash. The main thread prints the current behaviour periodically.
//
// usage: victim [--threads N] [--interval-ms MS] [--seccomp MODE] [--spawn-threads] [--mdwe] [--parked]
//   --parked: one more thread blocks in pause() inside parked_call's first bytes until SIGUSR2.
//   --spinner: one more thread loops inside spin_call's first bytes.
//   --call-spinner: one more thread loops inside call_spin's first bytes, which hold a call that
//     returns inside them.
//   --planted-return: one more thread keeps parse_length's entry + 1 in a stack word and runs on,
//     never blocked, until SIGUSR2 clears it.
//   --handler-parked: one more thread sends itself SIGPWR from inside parked_call's first bytes;
//     the handler blocks in pause() until SIGUSR2, its signal frame holding that inside address.
//   --catch-quiet-signals: handlers for SIGURG, SIGWINCH and SIGCHLD (ignored by default), counted
//     in signals=.
//   MODE: deny-mmap-errno | deny-openat-errno | kill-mmap | kill-openat | trap-mmap | systemd-mdwe |
//     kill-tgkill | deny-file-mmap-errno (an mmap with a descriptor fails with EPERM) |
//     strict (the main thread enters strict mode, says ready, then waits in read(2) forever)
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int scale_factor = 2;
static atomic_ulong calls;
static atomic_ulong signals_seen;

// Non-exported helper the level-2 patch reaches through a `refs` entry.
__attribute__((noinline)) static int helper_scale(int x) { return x * scale_factor; }

// The "vulnerable" function: no bound on the length. Level 1 clamps to 64, level 2 to 32.
__attribute__((noinline)) int parse_length(int n) {
    volatile int result = n;
    return result;
}

// Level 1 also changes the banner; level 2 drops that change (back to 1).
__attribute__((noinline)) int banner_version(void) {
    volatile int version = 1;
    return version;
}

// Never called by the program itself: tests plant a breakpoint at its entry.
__attribute__((noinline)) int rarely_called(int x) {
    volatile int y = x + helper_scale(1);
    return y;
}

// A function whose second byte starts a `syscall` instruction: a thread blocked in it resumes inside
// the bytes a jump would overwrite. The caller puts the call number in eax.
__asm__(".text\n.globl parked_call\n.type parked_call,@function\nparked_call:\n"
        "  nop\n  syscall\n  ret\n  .fill 16, 1, 0x90\n.size parked_call, .-parked_call\n");
// A loop inside the first five bytes (dec ecx; jnz; ret): a thread calling it is almost always
// inside the patch window, and single-stepping brings it out in a bounded number of steps.
__asm__(".text\n.globl spin_call\n.type spin_call,@function\nspin_call:\n"
        "  dec %ecx\n  jnz spin_call\n  ret\n  .fill 16, 1, 0x90\n.size spin_call, .-spin_call\n");
// A loop whose first bytes hold a 2-byte call returning 4 bytes in (dec ecx; call *rbx; jnz):
// single-stepping a thread out of the window can step it into the called function, its return
// address inside the window. rbx points to call_spin_leaf (a bare ret, which keeps the flags).
__asm__(".text\n.globl call_spin\n.type call_spin,@function\ncall_spin:\n"
        "  dec %ecx\n  call *%rbx\n  jnz call_spin\n  ret\n  .fill 16, 1, 0x90\n.size call_spin, .-call_spin\n"
        ".globl call_spin_leaf\n.type call_spin_leaf,@function\ncall_spin_leaf:\n  ret\n.size call_spin_leaf, .-call_spin_leaf\n");
static volatile sig_atomic_t unpark;

void *parked(void *arg);
__attribute__((noinline)) void *parked(void *arg) {
    (void)arg;
    printf("parked tid=%ld\n", (long)syscall(SYS_gettid));
    while (!unpark) {
        long result;
        __asm__ volatile("call parked_call" : "=a"(result) : "a"((long)SYS_pause) : "rcx", "r11", "memory");
    }
    printf("unparked\n");
    for (;;) pause();
    return NULL;
}

// The handler of the signal handler_parked sends itself: blocks until SIGUSR2 (on_usr2 sets
// unpark), then returns to the address its frame saved, inside parked_call's first bytes.
static void on_pwr(int sig) {
    (void)sig;
    static const char line[] = "in handler\n";
    (void)!write(STDOUT_FILENO, line, sizeof line - 1);
    while (!unpark) pause();
}

static void *handler_parked(void *arg) {
    (void)arg;
    long tid = syscall(SYS_gettid);
    printf("handler-parked tid=%ld\n", tid);
    long result;
    // tgkill(pid, tid, SIGPWR) on parked_call's syscall: the signal arrives as that call returns,
    // with the thread's next instruction 3 bytes into parked_call.
    __asm__ volatile("call parked_call"
                     : "=a"(result)
                     : "a"((long)SYS_tgkill), "D"((long)getpid()), "S"(tid), "d"((long)SIGPWR)
                     : "rcx", "r11", "memory");
    printf("handler returned\n");
    for (;;) pause();
    return NULL;
}

static void *planted_return(void *arg) {
    (void)arg;
    // As a signal frame or a return address would hold it: an address 1 byte into parse_length.
    // Stored alone: an initializer list is built in a temporary first, a copy nothing clears.
    volatile uintptr_t words[4] = { 0 };
    words[1] = (uintptr_t)parse_length + 1;
    printf("planted tid=%ld\n", (long)syscall(SYS_gettid));
    while (!unpark) words[0]++;
    words[1] = 0;
    printf("unplanted\n");
    for (;;) words[0]++;
    return NULL;
}

static void *call_spinner(void *arg) {
    (void)arg;
    for (;;) __asm__ volatile("mov $200, %%ecx\n lea call_spin_leaf(%%rip), %%rbx\n call call_spin" ::: "rcx", "rbx", "memory", "cc");
    return NULL;
}

static void *spinner(void *arg) {
    (void)arg;
    for (;;) __asm__ volatile("mov $200, %%ecx\n call spin_call" ::: "rcx", "memory");
    return NULL;
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        int r = parse_length(100);
        if (r != 100 && r != 64 && r != 32) {
            fprintf(stderr, "victim: parse_length(100) returned %d: torn patch\n", r);
            abort();
        }
        int b = banner_version();
        if (b != 1 && b != 2) {
            fprintf(stderr, "victim: banner_version() returned %d: torn patch\n", b);
            abort();
        }
        atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *short_lived(void *arg) { return arg; }

static void *spawner(void *arg) {
    (void)arg;
    for (;;) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, NULL) == 0) pthread_join(t, NULL);
    }
    return NULL;
}

static void on_usr1(int sig) { (void)sig; atomic_fetch_add_explicit(&signals_seen, 1, memory_order_relaxed); }
static void on_usr2(int sig) { (void)sig; unpark = 1; }
static void on_quiet(int sig) { (void)sig; atomic_fetch_add_explicit(&signals_seen, 1, memory_order_relaxed); }

#define ARCH_CHECK \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)), \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xC000003E, 1, 0), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS), \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))

static void install(struct sock_filter *filter, unsigned short length) {
    struct sock_fprog program = { .len = length, .filter = filter };
    // TSYNC: the filter reaches the threads already running, as in a service whose filter is set
    // before its threads start.
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program) != 0) {
        perror("victim: seccomp");
        exit(3);
    }
}

static void install_seccomp(const char *mode) {
    if (strcmp(mode, "systemd-mdwe") == 0) {
        // What systemd 252 installs for MemoryDenyWriteExecute=yes: no W+X mmap, no mprotect to X.
        struct sock_filter f[] = {
            ARCH_CHECK,
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 4),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
            BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 6, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 1, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pkey_mprotect, 0, 4),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
            BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 1, 2),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        install(f, sizeof f / sizeof f[0]);
        // Prove the filter bites: a writable and executable mapping must be refused.
        void *wx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (wx != MAP_FAILED || errno != EPERM) { fprintf(stderr, "victim: W+X mmap was not refused\n"); exit(5); }
        return;
    }
    if (strcmp(mode, "deny-file-mmap-errno") == 0) {
        struct sock_filter f[] = {
            ARCH_CHECK,
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[4])),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xFFFFFFFF, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        install(f, sizeof f / sizeof f[0]);
        return;
    }
    long nr = -1;
    unsigned int action = 0;
    if (strcmp(mode, "deny-mmap-errno") == 0) { nr = SYS_mmap; action = SECCOMP_RET_ERRNO | EPERM; }
    else if (strcmp(mode, "deny-openat-errno") == 0) { nr = SYS_openat; action = SECCOMP_RET_ERRNO | EACCES; }
    else if (strcmp(mode, "kill-mmap") == 0) { nr = SYS_mmap; action = SECCOMP_RET_KILL_PROCESS; }
    else if (strcmp(mode, "kill-openat") == 0) { nr = SYS_openat; action = SECCOMP_RET_KILL_PROCESS; }
    else if (strcmp(mode, "trap-mmap") == 0) { nr = SYS_mmap; action = SECCOMP_RET_TRAP; }
    else if (strcmp(mode, "kill-tgkill") == 0) { nr = SYS_tgkill; action = SECCOMP_RET_KILL_PROCESS; }
    else { fprintf(stderr, "victim: unknown seccomp mode %s\n", mode); exit(2); }
    struct sock_filter f[] = {
        ARCH_CHECK,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    install(f, sizeof f / sizeof f[0]);
}

int main(int argc, char **argv) {
    int threads = 8, interval_ms = 100, spawn = 0, mdwe = 0, park = 0, spin = 0, catch_quiet = 0, handler_park = 0, call_spin_on = 0, plant = 0;
    const char *seccomp_mode = NULL;
    // A short-lived program whose first act is to call the patched functions (a cron job, a CGI
    // program): the exec gate must have patched it before this line runs.
    if (argc == 2 && strcmp(argv[1], "--once") == 0) {
        printf("parse_length(100)=%d banner=%d\n", parse_length(100), banner_version());
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc) interval_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seccomp") == 0 && i + 1 < argc) seccomp_mode = argv[++i];
        else if (strcmp(argv[i], "--spawn-threads") == 0) spawn = 1;
        else if (strcmp(argv[i], "--mdwe") == 0) mdwe = 1;
        else if (strcmp(argv[i], "--parked") == 0) park = 1;
        else if (strcmp(argv[i], "--spinner") == 0) spin = 1;
        else if (strcmp(argv[i], "--handler-parked") == 0) handler_park = 1;
        else if (strcmp(argv[i], "--call-spinner") == 0) call_spin_on = 1;
        else if (strcmp(argv[i], "--planted-return") == 0) plant = 1;
        else if (strcmp(argv[i], "--catch-quiet-signals") == 0) catch_quiet = 1;
        else { fprintf(stderr, "victim: unknown argument %s\n", argv[i]); return 2; }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    if (catch_quiet) {
        signal(SIGURG, on_quiet);
        signal(SIGWINCH, on_quiet);
        signal(SIGCHLD, on_quiet);
    }
    if (mdwe) {
        // PR_SET_MDWE (65) with PR_MDWE_REFUSE_EXEC_GAIN (1), kernel >= 6.3.
        if (prctl(65, 1, 0, 0, 0) != 0) { printf("mdwe-unsupported errno=%d\n", errno); return 4; }
    }
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL) != 0) { perror("victim: pthread_create"); return 1; }
    }
    if (park) {
        pthread_t t;
        pthread_create(&t, NULL, parked, NULL);
    }
    if (handler_park) {
        pthread_t t;
        signal(SIGPWR, on_pwr);
        pthread_create(&t, NULL, handler_parked, NULL);
    }
    if (spin) {
        pthread_t t;
        pthread_create(&t, NULL, spinner, NULL);
    }
    if (plant) {
        pthread_t t;
        pthread_create(&t, NULL, planted_return, NULL);
    }
    if (call_spin_on) {
        pthread_t t;
        pthread_create(&t, NULL, call_spinner, NULL);
    }
    if (spawn) {
        pthread_t t;
        pthread_create(&t, NULL, spawner, NULL);
    }
    // Installed last, once every thread exists (a filter that denies mmap forbids new stacks).
    printf("starting pid=%d\n", getpid());
    if (seccomp_mode && strcmp(seccomp_mode, "strict") == 0) {
        // Strict mode allows read, write, exit and sigreturn: stdout's buffer exists already (the
        // line above), so the printf below is one write; getpid(2) is not allowed, so asked before.
        int never[2];
        pid_t self = getpid();
        if (pipe(never) != 0) { perror("victim: pipe"); return 1; }
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0) { perror("victim: strict mode"); return 1; }
        printf("ready pid=%d threads=%d strict\n", self, threads);
        char byte;
        for (;;) (void)read(never[0], &byte, 1);
    }
    if (seccomp_mode) install_seccomp(seccomp_mode);
    printf("ready pid=%d threads=%d\n", getpid(), threads);
    for (;;) {
        printf("parse_length(100)=%d banner=%d calls=%lu signals=%lu\n", parse_length(100), banner_version(),
               atomic_load(&calls), atomic_load(&signals_seen));
        struct timespec delay = { interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L };
        nanosleep(&delay, NULL);
        (void)rarely_called;
    }
}
