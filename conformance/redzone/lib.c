// redzone: a leaf function that keeps 128 bytes of live data in the red zone below the stack
// pointer (the System V ABI lets a leaf do so without moving %rsp), spinning for a while and then
// checking them. Whatever the agent does to a thread stopped in it (injected system calls, a
// signal frame) must leave those bytes alone.
__attribute__((noipa)) int answer(int x) { return x > 1000000 ? -1 : x + 1; }

// int redzone_spin(long iterations): 0 when the red zone survived, 1 when a byte changed.
__asm__(
    ".text\n"
    ".globl redzone_spin\n"
    ".type redzone_spin, @function\n"
    "redzone_spin:\n"
    "    movabs $0x5a5aa5a55a5aa5a5, %rax\n"
    "    .irp offset, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128\n"
    "    mov %rax, -\\offset(%rsp)\n"
    "    .endr\n"
    "1:  pause\n"
    "    dec %rdi\n"
    "    jnz 1b\n"
    "    .irp offset, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128\n"
    "    cmp %rax, -\\offset(%rsp)\n"
    "    jne 2f\n"
    "    .endr\n"
    "    xor %eax, %eax\n"
    "    ret\n"
    "2:  mov $1, %eax\n"
    "    ret\n"
    ".size redzone_spin, . - redzone_spin\n");
