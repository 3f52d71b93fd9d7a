# hidden_function: a hidden (non-exported) function of the library, called from inside it, is
# replaced and reverted.
run() { library_case libhidden.so --replace compute=compute_fixed; }

before_patch() {
    nm -D libhidden.so | grep -qw compute && fail "compute() is exported: not a hidden function"
    nm libhidden.so | grep -q ' t compute$' || fail "compute() is not a local symbol of the library: $(nm libhidden.so | grep compute)"
}
