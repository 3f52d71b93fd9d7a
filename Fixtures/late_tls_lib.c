// A library with a thread-local that late_tls_loader opens with dlopen after start-up, so its TLS
// block is allocated per thread on demand, not in static TLS.
__thread long late_tls;

__attribute__((noinline)) long late_step(void) {
    late_tls += 1;
    return late_tls;
}
