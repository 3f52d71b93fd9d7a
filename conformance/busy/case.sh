# busy: threads running inside the function while it is patched and reverted (default, not
# strict): they finish the call they are in with the old code and take the jump on the next call.
run() { library_case libbusy.so --replace busy_loop=busy_loop_fixed; }
