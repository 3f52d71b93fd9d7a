// A program whose `answer` is 3 bytes (`mov %edi,%eax; ret`), too short for the 5-byte jump, with
// 5 no-ops GCC reserves before its entry (patchable_function_entry): patched the classic hotpatch
// way, a jump in the padding and a 2-byte hop at the entry. Prints its result every 20 ms.
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline, patchable_function_entry(5, 5))) int answer(int x) { return x; }

int main(void) {
    volatile int question = 41;
    setvbuf(stdout, NULL, _IOLBF, 0);
    puts("ready");
    for (;;) {
        printf("answer=%d\n", answer(question));
        usleep(20000);
    }
}
