// pagecross: a function whose entry straddles a page boundary: its first instruction (mov $1,
// %eax, 5 bytes) starts 2 bytes before the end of a page, so the jump written over it spans two
// pages.
__asm__(
    ".text\n"
    ".p2align 12\n"
    "pagecross_padding:\n"
    "    .fill 4094, 1, 0xcc\n"
    ".globl crossing\n"
    ".type crossing, @function\n"
    "crossing:\n"
    "    mov $1, %eax\n"
    "    ret\n"
    ".size crossing, . - crossing\n");
