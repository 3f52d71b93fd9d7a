# tls: the fix reads and writes the library's thread-local variables (global-dynamic and
# initial-exec) in every thread. Needs issue 10 section 2 (thread-locals resolved from the
# target's TLS layout); until then the agent refuses the patch object.
run() {
    case_init
    cc_lib libtls.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -ltls
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch tls-1 1 libtls.so patch.so --replace count_call=count_call_fixed
    apply_then_revert p tls-1
}
