// tls: thread-local variables of the library, one in the global-dynamic model (the default for
// -fPIC) and one in the initial-exec model, that the fix must read and write in each thread.
__thread int tls_calls;
__thread int tls_flags __attribute__((tls_model("initial-exec")));

// Counts a call in the calling thread; the original returns the count.
__attribute__((noipa)) int count_call(void) {
    tls_flags += 1;
    return ++tls_calls;
}

// What the library sees in the calling thread.
int tls_calls_now(void) { return tls_calls; }
int tls_flags_now(void) { return tls_flags; }
