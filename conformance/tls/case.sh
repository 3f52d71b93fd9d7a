# tls: the fix reads and writes the library's thread-local variables (global-dynamic and
# initial-exec) in every thread. Needs issue 10 section 2 (thread-locals resolved from the
# target's TLS layout); until then hotpatch-pack refuses the patch object.
run() { library_case libtls.so --replace count_call=count_call_fixed; }
