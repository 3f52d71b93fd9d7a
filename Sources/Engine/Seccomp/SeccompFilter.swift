import Architecture
import Glibc

/// One classic-BPF instruction of a seccomp filter (`struct sock_filter`).
public struct BPFInstruction: Sendable, Hashable {
    /// The opcode: class, size/mode or operation, and source bits.
    public var code: UInt16
    /// For a conditional jump, how many instructions to skip when the condition holds.
    public var jumpIfTrue: UInt8
    /// For a conditional jump, how many instructions to skip when it does not.
    public var jumpIfFalse: UInt8
    /// The constant operand (offset, immediate, jump distance, return value).
    public var k: UInt32

    /// Describes one instruction.
    public init(code: UInt16, jumpIfTrue: UInt8 = 0, jumpIfFalse: UInt8 = 0, k: UInt32 = 0) {
        self.code = code
        self.jumpIfTrue = jumpIfTrue
        self.jumpIfFalse = jumpIfFalse
        self.k = k
    }
}

/// A seccomp filter program that the kernel would accept, decoded once for evaluation.
///
/// The initialiser repeats the checks Linux makes when a filter is installed (bpf_check_classic
/// and check_load_and_stores in net/core/filter.c, seccomp_check_filter in kernel/seccomp.c), so
/// a filter this type holds is one the kernel runs; anything else throws `systemCall` with the
/// errno the kernel gives, EINVAL, and the reason. Notably, as in the kernel (checked against 6.18):
/// `BPF_MOD` and `BPF_NEG|BPF_X` are not allowed in seccomp filters; a constant divisor of 0 and a
/// constant shift of 32 or more are refused; `BPF_LD|BPF_W|BPF_ABS` must read an aligned word of
/// the 64-byte `struct seccomp_data`; scratch memory must be written on every path before it is read.
public struct SeccompFilter: Sendable {
    /// The instructions, as installed and as PTRACE_SECCOMP_GET_FILTER returns them.
    public let instructions: [BPFInstruction]
    let program: [BPFOperation]

    /// The most instructions a filter may have (BPF_MAXINSNS).
    public static let maximumLength = 4096

    /// Validates `instructions` as the kernel does when the filter is installed; throws
    /// `EngineError.systemCall(name: "seccomp", errno: EINVAL, …)` naming the first offence.
    public init(instructions: [BPFInstruction]) throws {
        self.instructions = instructions
        self.program = try BPFValidator.decode(instructions)
    }
}

/// The input a seccomp filter sees for one system call (`struct seccomp_data`).
public struct SeccompData: Sendable {
    /// The system call number (`nr`), for the ABI named by `architecture`.
    public var systemCall: Int32
    /// The audit architecture of the calling ABI (`arch`), e.g. `HostArchitecture.auditArchitecture`.
    public var architecture: UInt32
    /// The address just after the system call instruction (`instruction_pointer`).
    public var instructionPointer: UInt64
    /// The six system call arguments (`args`); missing ones read as 0, extra ones are ignored.
    public var arguments: [UInt64]

    /// Describes one system call; the architecture defaults to the host's native ABI.
    public init(systemCall: Int32, architecture: UInt32 = HostArchitecture.auditArchitecture, instructionPointer: UInt64 = 0,
                arguments: [UInt64] = []) {
        self.systemCall = systemCall
        self.architecture = architecture
        self.instructionPointer = instructionPointer
        self.arguments = arguments
    }

    /// The 32-bit word at byte `offset` of `struct seccomp_data` (little-endian, as every host the
    /// package builds for: a 64-bit field's low half comes first). `offset` is validated: aligned and below 64.
    func word(at offset: UInt32) -> UInt32 {
        let value: UInt64
        switch offset {
        case 0: return UInt32(bitPattern: systemCall)
        case 4: return architecture
        case 8, 12: value = instructionPointer
        default:
            let index = Int(offset - 16) / 8
            value = index < arguments.count ? arguments[index] : 0
        }
        return offset % 8 == 0 ? UInt32(truncatingIfNeeded: value) : UInt32(truncatingIfNeeded: value >> 32)
    }
}
