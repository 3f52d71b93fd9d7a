# tls: the fix reads and writes the library's thread-local variables (global-dynamic and
# initial-exec) in every thread. Needs issue 10 section 2 (thread-locals resolved from the
# target's TLS layout); until then hotpatch-pack refuses the patch object.
run() { library_case libtls.so --replace count_call=count_call_fixed; }

before_patch() {
    # Both models really are in the fix: a module id and offset (global-dynamic) and a GOT
    # slot with the offset from the thread pointer (initial-exec).
    local relocations
    relocations=$(readelf -rW patch.so)
    grep -q R_X86_64_DTPMOD64 <<<"$relocations" || fail "the fix has no global-dynamic thread-local access"
    grep -q R_X86_64_TPOFF64 <<<"$relocations" || fail "the fix has no initial-exec thread-local access"
}
