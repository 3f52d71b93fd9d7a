// Lucas numbers; the fix's recursive calls go to itself.
long sequence_fixed(long n) {
    if (n == 0) return 2;
    if (n == 1) return 1;
    return sequence_fixed(n - 1) + sequence_fixed(n - 2);
}
