# endbr64: the replaced function begins with endbr64 (-fcf-protection=full), patch and revert.
run() {
    LIB_FLAGS=(-fcf-protection=full)
    library_case libendbr64.so --replace answer=answer_fixed
}
