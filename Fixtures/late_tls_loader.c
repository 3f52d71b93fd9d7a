// Opens the library named by its argument with dlopen and calls its late_step every 20 ms,
// printing "value=N": the calling thread's thread-local as the library's code left it.
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *library = dlopen(argv[1], RTLD_NOW);
    if (!library) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    long (*step)(void) = (long (*)(void))dlsym(library, "late_step");
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        printf("value=%ld\n", step());
        fflush(stdout);
        usleep(20000);
    }
}
