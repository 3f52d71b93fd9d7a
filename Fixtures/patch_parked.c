// Replacements for the victim's parked_call (eax = call number), spin_call (ecx = count) and
// call_spin (ecx = count, rbx = the function it calls).
__asm__(".text\n.globl parked_call_fixed\n.type parked_call_fixed,@function\nparked_call_fixed:\n"
        "  syscall\n  ret\n.size parked_call_fixed, .-parked_call_fixed\n");
__asm__(".text\n.globl spin_call_fixed\n.type spin_call_fixed,@function\nspin_call_fixed:\n"
        "  dec %ecx\n  jnz spin_call_fixed\n  ret\n.size spin_call_fixed, .-spin_call_fixed\n");
__asm__(".text\n.globl call_spin_fixed\n.type call_spin_fixed,@function\ncall_spin_fixed:\n"
        "  dec %ecx\n  call *%rbx\n  jnz call_spin_fixed\n  ret\n.size call_spin_fixed, .-call_spin_fixed\n");
