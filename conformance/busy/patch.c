int busy_loop_fixed(long spins) {
    for (long i = 0; i < spins; i++) __asm__ volatile("pause");
    return 2;
}
