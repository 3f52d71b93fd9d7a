extension X86_64 {
    /// Whether `bytes` are whole filler instructions the assembler puts between functions: `nop`
    /// (90), `int3` (CC), the multi-byte `nop` forms (0F 1F /0, with 66 and CS prefixes) and
    /// `xchg %ax,%ax` (66 90). Nothing else: a byte that may be code or data is not filler.
    public static func isFiller(_ bytes: [UInt8]) -> Bool {
        var index = 0
        while index < bytes.count {
            guard let length = fillerInstructionLength(bytes, at: index) else { return false }
            index += length
        }
        return true
    }

    /// The length of the filler instruction at `start`, or nil if none begins there (or it runs
    /// past the end).
    private static func fillerInstructionLength(_ bytes: [UInt8], at start: Int) -> Int? {
        var index = start
        // Operand-size and CS-segment prefixes, as in `66 2e 0f 1f 84 00 00 00 00 00`.
        while index < bytes.count, bytes[index] == 0x66 || bytes[index] == 0x2E { index += 1 }
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case 0x90:
            return index + 1 - start
        case 0xCC where index == start:
            return 1
        case 0x0F:
            guard index + 2 < bytes.count, bytes[index + 1] == 0x1F else { return nil }
            let modrm = bytes[index + 2]
            // /0 only: the reg field of `nop r/m` is 0.
            guard (modrm >> 3) & 7 == 0 else { return nil }
            let mod = modrm >> 6, rm = modrm & 7
            var length = 3
            if mod != 3 && rm == 4 { length += 1 }
            switch mod {
            case 0: if rm == 5 { length += 4 }
            case 1: length += 1
            case 2: length += 4
            default: break
            }
            let end = index + length
            return end <= bytes.count ? end - start : nil
        default:
            return nil
        }
    }
}
