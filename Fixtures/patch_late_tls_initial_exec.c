// Patch object for late_tls_lib reaching its thread-local by the initial-exec model, which needs
// the block in static TLS: refused for a library opened with dlopen.
extern __thread long late_tls __attribute__((tls_model("initial-exec")));

long late_step_fixed(void) {
    late_tls += 100;
    return late_tls;
}
