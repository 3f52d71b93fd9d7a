import CCapstone

/// One decoded x86-64 instruction, as far as the entry check needs it.
struct DecodedInstruction: Equatable {
    /// Its address (the address the bytes were decoded at, plus its offset among them).
    var address: UInt64
    /// Its length in bytes.
    var length: Int
    /// Its mnemonic as objdump would print it ("jne", "loop", "call").
    var mnemonic: String
    /// Where it branches to when it is a direct branch (jmp, jcc, call, loop, jrcxz, xbegin); nil otherwise.
    var branchTarget: UInt64?
}

/// The x86-64 disassembler of the publisher's machine: Capstone (`cs_open`, `cs_disasm`), which only
/// hotpatch-pack links (the host's agent never disassembles anything).
final class Disassembler {
    private var handle: csh = 0

    /// Opens Capstone for x86-64 with instruction details on (needed for branch targets).
    init() throws(PackError) {
        guard cs_open(CS_ARCH_X86, CS_MODE_64, &handle) == CS_ERR_OK else {
            throw PackError("Failed to open the Capstone x86-64 disassembler: \(String(cString: cs_strerror(cs_errno(handle))))")
        }
        guard cs_option(handle, CS_OPT_DETAIL, Int(CS_OPT_ON.rawValue)) == CS_ERR_OK else {
            cs_close(&handle)
            throw PackError("Failed to turn on Capstone's instruction details: \(String(cString: cs_strerror(cs_errno(handle))))")
        }
    }

    deinit { cs_close(&handle) }

    /// Decodes `bytes` as code placed at `address`, in order, up to the first bytes that are no
    /// instruction Capstone knows; the instructions' lengths add up to how far it got.
    func decode(_ bytes: [UInt8], at address: UInt64) -> [DecodedInstruction] {
        var decoded: UnsafeMutablePointer<cs_insn>?
        let count = bytes.withUnsafeBufferPointer { buffer in
            cs_disasm(handle, buffer.baseAddress, buffer.count, address, 0, &decoded)
        }
        guard let decoded, count > 0 else { return [] }
        defer { cs_free(decoded, count) }
        return (0..<count).map { index in
            let instruction = decoded + index
            var target: UInt64 = 0
            let isBranch = ccapstone_x86_direct_branch_target(instruction, &target)
            let mnemonic = withUnsafeBytes(of: instruction.pointee.mnemonic) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            return DecodedInstruction(address: instruction.pointee.address, length: Int(instruction.pointee.size),
                                      mnemonic: mnemonic, branchTarget: isBranch ? target : nil)
        }
    }
}
