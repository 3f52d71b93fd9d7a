/// An instruction of carried code that reads or writes a target variable PC-relatively
/// (`mov level(%rip), %eax`, `addl $1, count(%rip)`), moved into a stub that addresses the variable
/// through the patch object's GOT: a patch object mapped away from the target reaches the target's
/// data only through words the agent relocates, never through a text relocation.
///
/// The stub keeps the red zone and every register and flag: it steps the stack pointer below the
/// red zone with `lea` (which leaves the flags alone), saves a scratch register (r11, or r10 when
/// the instruction names r11), loads the variable's address from the GOT, runs the instruction
/// with its `disp32(%rip)` operand turned into `disp32(%scratch)`, restores, and jumps back. The
/// original instruction becomes a jump to the stub padded with no-ops, so its length and every
/// branch target around it stay where they were.
struct AccessStub {
    /// The stub's code; the GOT load's field and the jump back's field are at the offsets below.
    var bytes: [UInt8]
    /// Offset in `bytes` of the GOT load's 4-byte field (R_X86_64_REX_GOTPCRELX, addend -4).
    var globalOffsetField: Int
    /// Offset in `bytes` of the jump back's 4-byte field (R_X86_64_PC32 to the instruction's end, addend -4).
    var returnField: Int

    private static let legacyPrefixes: Set<UInt8> = [0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67]
    /// One-byte opcodes whose ModRM `reg` names an 8-bit register, where 4–7 mean ah..bh without a REX prefix.
    private static let byteRegisterOpcodes: Set<UInt8> = [0x00, 0x02, 0x08, 0x0a, 0x10, 0x12, 0x18, 0x1a, 0x20, 0x22, 0x28, 0x2a,
                                                          0x30, 0x32, 0x38, 0x3a, 0x84, 0x86, 0x88, 0x8a]

    /// The stub for `instruction` (its bytes, `mnemonic` as the disassembler names it), whose
    /// PC-relative field starts at `field` and reaches `delta` bytes from the variable's start plus
    /// the field's own -4 (the relocation's addend); a failure says why the instruction cannot be moved.
    static func make(for instruction: [UInt8], mnemonic: String, field: Int, delta: Int64) -> Result<AccessStub, StubRefusal> {
        if ["push", "pop", "call", "jmp"].contains(where: { mnemonic.hasPrefix($0) }) {
            return .failure(StubRefusal("a \(mnemonic) through memory moves the stack pointer, which the stub also moves"))
        }
        var index = 0
        while index < instruction.count, legacyPrefixes.contains(instruction[index]) { index += 1 }
        let prefixEnd = index
        var rex: UInt8?
        if index < instruction.count, (0x40...0x4f).contains(instruction[index]) { rex = instruction[index]; index += 1 }
        let modrmIndex = field - 1
        guard index < instruction.count, ![0xc4, 0xc5, 0x62, 0x8f].contains(instruction[index]) else {
            return .failure(StubRefusal("a VEX/EVEX/XOP-encoded instruction (\(mnemonic)) is not rewritten"))
        }
        guard modrmIndex > index, field + 4 <= instruction.count, instruction[modrmIndex] & 0xc7 == 0x05 else {
            return .failure(StubRefusal("the \(mnemonic) at that place has no plain ModRM rip-relative operand"))
        }
        let opcode = Array(instruction[index..<modrmIndex])
        let reg = (instruction[modrmIndex] >> 3) & 7
        let regExtended = (rex ?? 0) & 0x4 != 0
        if rex == nil, reg >= 4, opcode.count == 1, byteRegisterOpcodes.contains(opcode[0]) {
            return .failure(StubRefusal("the \(mnemonic) names a high byte register (ah..bh), which a REX prefix would change"))
        }
        if rex == nil, reg >= 4, opcode == [0x0f, 0xb0] || opcode == [0x0f, 0xc0] {
            return .failure(StubRefusal("the \(mnemonic) names a high byte register (ah..bh), which a REX prefix would change"))
        }
        let scratch: UInt8 = regExtended && reg == 3 ? 2 : 3  // r10 when the instruction itself names r11
        let end = Int64(instruction.count - field)
        guard let displacement = Int32(exactly: delta + end) else {
            return .failure(StubRefusal("the offset from the variable does not fit 32 bits"))
        }
        var moved = Array(instruction[0..<prefixEnd]) + [(rex ?? 0x40) | 0x01] + opcode + [0x80 | reg << 3 | scratch]
        moved += withUnsafeBytes(of: displacement.littleEndian, Array.init)
        moved += instruction[(field + 4)...]

        var bytes: [UInt8] = [0x48, 0x8d, 0x64, 0x24, 0x80]  // lea -0x80(%rsp), %rsp
        bytes += [0x41, 0x50 | scratch]  // push %r11 / %r10
        bytes += [0x4c, 0x8b, 0x05 | scratch << 3]  // mov VAR@GOTPCREL(%rip), %r11 / %r10
        let globalOffsetField = bytes.count
        bytes += [0, 0, 0, 0]
        bytes += moved
        bytes += [0x41, 0x58 | scratch]  // pop
        bytes += [0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00]  // lea 0x80(%rsp), %rsp
        bytes += [0xe9]
        let returnField = bytes.count
        bytes += [0, 0, 0, 0]
        return .success(AccessStub(bytes: bytes, globalOffsetField: globalOffsetField, returnField: returnField))
    }
}

/// Why an instruction cannot be moved into a stub.
struct StubRefusal: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
