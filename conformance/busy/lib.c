// busy: a function that threads are always inside (a long spin), replaced while they run in it.
__attribute__((noipa)) int busy_loop(long spins) {
    for (long i = 0; i < spins; i++) __asm__ volatile("pause");
    return 1;
}
