/// The x86-64 code of the self-restoring stub (`Architecture.injectionStub`): `syscall`, then
/// `rt_sigprocmask(SIG_SETMASK, mask)`, `popfq` of the saved flags, `mov reg, [rip+slot]` for 15
/// general registers, `mov rsp, [rip+slot]` and `jmp [rip+slot]`, followed by the 19 saved 8-byte
/// slots: mask, flags, the registers in `registerOrder`, rsp, rip. It addresses the slots
/// relative to itself, so it runs wherever it is written.
public enum InjectionStubCode {
    /// The words of `struct user_regs_struct` the stub restores, in slot order: rax, rbx, rcx, rdx,
    /// rsi, rdi, rbp, r8 … r15 (rsp is restored apart, last).
    public static let registerOrder: [Int] = [
        X86_64.Word.rax, X86_64.Word.rbx, X86_64.Word.rcx, X86_64.Word.rdx, X86_64.Word.rsi, X86_64.Word.rdi,
        X86_64.Word.rbp, X86_64.Word.r8, X86_64.Word.r9, X86_64.Word.r10, X86_64.Word.r11, X86_64.Word.r12,
        X86_64.Word.r13, X86_64.Word.r14, X86_64.Word.r15,
    ]
    /// The x86-64 register numbers (0 rax, 1 rcx, 2 rdx, 3 rbx, 5 rbp, 6 rsi, 7 rdi, 8 … 15 r8 …
    /// r15) of `registerOrder`, as the `mov` instructions encode them.
    private static let registerNumbers: [UInt8] = [0, 3, 1, 2, 6, 7, 5, 8, 9, 10, 11, 12, 13, 14, 15]
    /// How many 8-byte slots follow the code.
    public static let slotCount = 19

    /// The stub's bytes; its first two are the `syscall` the injected calls run on. `registers`
    /// holds the 15 values in `registerOrder`.
    public static func encode(registers: [UInt64], stackPointer: UInt64, flags: UInt64, instructionPointer: UInt64,
                              signalMask: UInt64) -> [UInt8] {
        precondition(registers.count == registerNumbers.count)
        // Encoded for every process a first apply loads into: appended in place, the rel32 fields
        // set once the slots' offset is known.
        var code = MachineCode(capacity: 256)
        var fixups: [(at: Int, slot: Int)] = []              // rel32 fields to point at a slot
        fixups.reserveCapacity(registerNumbers.count + 4)
        code.append(X86_64.systemCallInstruction)           // syscall
        // Slots: 0 mask, 1 flags, 2 … 16 registers, 17 rsp, 18 rip.
        code.append(0xB8)                                    // mov eax, rt_sigprocmask
        code.append(littleEndian: UInt32(X86_64.systemCalls.rtSigprocmask))
        code.append(0xBF)                                    // mov edi, 2 (SIG_SETMASK)
        code.append(littleEndian: UInt32(2))
        code.append(0x48, 0x8D, 0x35)                        // lea rsi, [rip+mask]
        fixups.append((code.appendField(), 0))
        code.append(0x31, 0xD2)                              // xor edx, edx (no old mask)
        code.append(0x41, 0xBA)                              // mov r10d, 8 (sigset size)
        code.append(littleEndian: UInt32(8))
        code.append(X86_64.systemCallInstruction)           // syscall
        code.append(0xFF, 0x35)                              // push qword [rip+flags]
        fixups.append((code.appendField(), 1))
        code.append(0x9D)                                    // popfq
        for (index, register) in registerNumbers.enumerated() {
            // mov reg, [rip+slot]: REX.W (+R for r8-r15), 8B, ModRM reg/rip-relative.
            code.append(0x48 | (register >= 8 ? 4 : 0), 0x8B, ((register & 7) << 3) | 5)
            fixups.append((code.appendField(), 2 + index))
        }
        code.append(0x48, 0x8B, 0x25)                        // mov rsp, [rip+rsp]
        fixups.append((code.appendField(), 17))
        code.append(0xFF, 0x25)                              // jmp qword [rip+rip]
        fixups.append((code.appendField(), 18))
        while code.count % 8 != 0 { code.append(0xCC) }      // int3 up to the slots
        let slotsStart = code.count
        for fixup in fixups { code.setDisplacement(at: fixup.at, toReach: slotsStart + fixup.slot * 8) }
        code.append(littleEndian: signalMask)
        code.append(littleEndian: flags)
        for register in registers { code.append(littleEndian: register) }
        code.append(littleEndian: stackPointer)
        code.append(littleEndian: instructionPointer)
        precondition(code.count == slotsStart + slotCount * 8)
        return code.bytes
    }
}
