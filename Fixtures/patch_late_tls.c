// Patch object for late_tls_lib: the library's thread-local by the global-dynamic model (the
// default for -fPIC), which works for a block allocated on demand.
extern __thread long late_tls;

long late_step_fixed(void) {
    late_tls += 100;
    return late_tls;
}
