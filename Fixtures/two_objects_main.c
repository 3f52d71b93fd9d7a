// A program mapping two targeted libraries (libA: a_value, libB: b_value), for patches that change
// both in one stop. A second thread calls both in a loop; the main thread prints "a=N b=M" every
// 20 ms. With --tamper-b it first replaces b_value's endbr64 with a 4-byte nop (same behaviour,
// foreign bytes), so a hotpatch of libB is refused there. With --vfork-child SECONDS a third thread
// vforks a child that prints "vfork child PID" and sleeps SECONDS before it exits (sharing this
// process's memory all the while, as a posix_spawn child does until its exec); "vfork done" after.
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int a_value(int x);
int b_value(int x);

static volatile int sink;

static void *caller(void *unused) {
    (void)unused;
    for (;;) {
        sink = a_value(1) + b_value(1);
        usleep(100);
    }
    return NULL;
}

static int tamper(void) {
    unsigned char *entry = dlsym(RTLD_DEFAULT, "b_value");
    static const unsigned char endbr64[] = {0xf3, 0x0f, 0x1e, 0xfa};
    static const unsigned char nop4[] = {0x0f, 0x1f, 0x40, 0x00};
    if (!entry || memcmp(entry, endbr64, sizeof endbr64) != 0) return -1;
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *start = (unsigned char *)((uintptr_t)entry & ~(uintptr_t)(page - 1));
    if (mprotect(start, 2 * page, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) return -1;
    memcpy(entry, nop4, sizeof nop4);
    return mprotect(start, 2 * page, PROT_READ | PROT_EXEC);
}

static int vfork_seconds;

/// In the vfork child: only system calls, on its own stack (it shares the parent's memory).
static void child_says_pid(void) {
    char text[32] = "vfork child ";
    char digits[12];
    int n = 0, length = 12;
    for (long pid = syscall(SYS_getpid); pid > 0 || n == 0; pid /= 10) digits[n++] = (char)('0' + pid % 10);
    while (n > 0) text[length++] = digits[--n];
    text[length++] = '\n';
    syscall(SYS_write, 1, text, length);
}

static void *vforker(void *unused) {
    (void)unused;
    if (vfork() == 0) {
        child_says_pid();
        struct timespec pause = {vfork_seconds, 0};
        syscall(SYS_nanosleep, &pause, NULL);
        _exit(0);
    }
    printf("vfork done\n");
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "--vfork-child") == 0) vfork_seconds = atoi(argv[2]);
    if (argc > 1 && strcmp(argv[1], "--tamper-b") == 0 && tamper() != 0) {
        fprintf(stderr, "cannot tamper with b_value\n");
        return 2;
    }
    pthread_t thread;
    pthread_create(&thread, NULL, caller, NULL);
    printf("ready\n");
    fflush(stdout);
    if (vfork_seconds > 0) {
        pthread_t spawner;
        pthread_create(&spawner, NULL, vforker, NULL);
    }
    for (;;) {
        printf("a=%d b=%d\n", a_value(1), b_value(1));
        fflush(stdout);
        usleep(20000);
    }
}
