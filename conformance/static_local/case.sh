# static_local: the fix updates a static local variable of the replaced function, named as the
# symbol table names it (--ref counter.0). Needs issue 10 section 2's static locals.
run() {
    case_init
    cc_lib libstaticlocal.so "$SRC/lib.c"
    nm libstaticlocal.so | grep -q ' counter\.0$' || fail "the compiler did not name the static local counter.0: $(nm libstaticlocal.so | grep counter)"
    cc_prog prog "$SRC/prog.c" -L. -lstaticlocal
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch static_local-1 1 libstaticlocal.so patch.so --replace next_ticket=next_ticket_fixed --ref counter.0
    apply_then_revert p static_local-1
}
