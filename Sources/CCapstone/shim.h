// Capstone, the disassembler hotpatch-pack checks function entries with (Debian's libcapstone-dev).
// Only the Pack target links it: hosts never install it. The helpers below read cs_detail, whose
// fixed-size arrays Swift sees as tuples, so the Swift side stays free of tuple indexing.
#ifndef CCAPSTONE_SHIM_H
#define CCAPSTONE_SHIM_H

#include <capstone/capstone.h>
#include <stdbool.h>
#include <stdint.h>

/// Whether `insn` (decoded with CS_OPT_DETAIL on) belongs to Capstone group `group`.
static inline bool ccapstone_in_group(const cs_insn *insn, uint8_t group) {
    if (insn->detail == NULL) return false;
    for (uint8_t i = 0; i < insn->detail->groups_count; i++) {
        if (insn->detail->groups[i] == group) return true;
    }
    return false;
}

/// The absolute address a direct x86 branch (jmp, jcc, call, loop, jrcxz, xbegin) goes to, in
/// `*target`; false for every other instruction, indirect branches included.
static inline bool ccapstone_x86_direct_branch_target(const cs_insn *insn, uint64_t *target) {
    if (insn->detail == NULL) return false;
    bool branch = insn->id == X86_INS_XBEGIN || ccapstone_in_group(insn, CS_GRP_JUMP)
        || ccapstone_in_group(insn, CS_GRP_CALL) || ccapstone_in_group(insn, CS_GRP_BRANCH_RELATIVE);
    if (!branch || insn->detail->x86.op_count < 1 || insn->detail->x86.operands[0].type != X86_OP_IMM) return false;
    *target = (uint64_t)insn->detail->x86.operands[0].imm;
    return true;
}

#endif
