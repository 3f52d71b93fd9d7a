# static_local: the fix updates a static local variable of the replaced function, named as the
# symbol table names it (--ref counter.0).
run() { library_case libstaticlocal.so --replace next_ticket=next_ticket_fixed --ref counter.0; }

before_patch() {
    nm libstaticlocal.so | grep -q ' counter\.0$' || fail "the compiler did not name the static local counter.0: $(nm libstaticlocal.so | grep counter)"
}
