# strict_top: with strict_stack_check = true, a thread running inside a function being replaced
# (its top frame: the instruction pointer in the body, no return address into it) also keeps the
# process from being patched until it has left; then the same run patches it.
run() { strict_case libstricttop.so "running inside spin_until()" --replace answer=answer_fixed --replace spin_until=spin_until_fixed; }
