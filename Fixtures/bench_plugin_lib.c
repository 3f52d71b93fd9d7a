// A plugin library for the exec-window benchmark: a program that dlopens it and calls
// plugin_length first thing is the short-lived loader whose first call must run the fix.
__attribute__((noinline)) int plugin_length(int n) { volatile int result = n; return result; }
