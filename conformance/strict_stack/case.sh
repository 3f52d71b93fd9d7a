# strict_stack: with strict_stack_check = true the agent refuses to patch while a thread's stack
# holds a return address into a function being replaced (busy, retried until --deadline, process
# untouched), and patches once that thread has left it; reverted by the daemon in strict mode.
run() { strict_case libstrict.so "blocked in a call made by stuck()" --replace answer=answer_fixed --replace stuck=stuck_fixed; }
