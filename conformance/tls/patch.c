// The fix counts in the library's thread-locals of the calling thread and returns the count plus
// 1,000,000.
extern __thread int tls_calls;
extern __thread int tls_flags __attribute__((tls_model("initial-exec")));

int count_call_fixed(void) {
    tls_flags += 1;
    return ++tls_calls + 1000000;
}
