// A broken hotpatch for the agent's health check: the replacement traps, so every patched victim
// dies of SIGILL the first time a worker calls it.
int parse_length_crash(int n) { (void)n; __builtin_trap(); }
