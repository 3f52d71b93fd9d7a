int answer_fixed(int x) { return x + 2; }

int spin_until_fixed(volatile int *flag) {
    while (!*flag) __asm__ volatile("pause");
    return 2;
}
