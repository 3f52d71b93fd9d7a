// strict_top: spin_until() is a leaf that a thread runs in (its top frame: the instruction pointer
// is in its body, no return address into it on the stack) until a flag is set.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }

__attribute__((noipa)) int spin_until(volatile int *flag) {
    while (!*flag) __asm__ volatile("pause");
    return 1;
}
