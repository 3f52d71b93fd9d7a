// recursion: a recursive function (the Fibonacci numbers), replaced by another recursive one (the
// Lucas numbers) while threads are deep inside the old recursion.
__attribute__((noipa)) long sequence(long n) {
    if (n < 2) return n;
    return sequence(n - 1) + sequence(n - 2);
}
