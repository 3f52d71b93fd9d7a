// static_local: next_ticket() keeps its count in a static local, which the compiler names
// counter.0 in the symbol table (nm libstaticlocal.so | grep counter).
__attribute__((noipa)) int next_ticket(void) {
    static int counter;
    return ++counter;
}

