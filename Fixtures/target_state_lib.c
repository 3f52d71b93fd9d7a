// The library target_state links against: two exported thread-locals in static TLS.
__thread long lib_tls_ie;
__thread long lib_tls_gd;
long lib_tls_sum(void) { return lib_tls_ie + lib_tls_gd; }
