// A program mapping two targeted libraries (libA: a_value, libB: b_value), for patches that change
// both in one stop. A second thread calls both in a loop; the main thread prints "a=N b=M" every
// 20 ms. With --tamper-b it first replaces b_value's endbr64 with a 4-byte nop (same behaviour,
// foreign bytes), so a hotpatch of libB is refused there.
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--tamper-b") == 0 && tamper() != 0) {
        fprintf(stderr, "cannot tamper with b_value\n");
        return 2;
    }
    pthread_t thread;
    pthread_create(&thread, NULL, caller, NULL);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        printf("a=%d b=%d\n", a_value(1), b_value(1));
        fflush(stdout);
        usleep(20000);
    }
}
