// Patch object for target_state: reaches its static local, static global and static function by
// the names its .symtab gives them (--ref counter.0 limit scale), and its thread-locals by the
// initial-exec and global-dynamic models.
/* `counter.0` is not a C identifier: an asm label gives the patch the symbol table's name. */
extern int counter_ref __asm__("counter.0");
extern int limit;
extern int scale(int value);
extern __thread long exe_tls_gd;
extern __thread long exe_tls_ie __attribute__((tls_model("initial-exec")));
extern __thread long lib_tls_ie __attribute__((tls_model("initial-exec")));
extern __thread long lib_tls_gd;

int next_ticket_fixed(void) {
    counter_ref += scale(100) / limit;
    return counter_ref;
}

long step_fixed(void) {
    exe_tls_gd += 1000; exe_tls_ie += 1000; lib_tls_ie += 1000; lib_tls_gd += 1000;
    return 1000;
}
