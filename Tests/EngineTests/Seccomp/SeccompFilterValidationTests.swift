import Glibc
import Testing
@testable import Engine

private func s(_ code: UInt16, _ k: UInt32 = 0) -> BPFInstruction { BPFInstruction(code: code, k: k) }
private func j(_ code: UInt16, _ k: UInt32, _ jt: UInt8, _ jf: UInt8) -> BPFInstruction {
    BPFInstruction(code: code, jumpIfTrue: jt, jumpIfFalse: jf, k: k)
}
private let ldNR = s(0x20, 0), allow = s(0x06, 0x7fff_0000)

private func isInvalidFilterError(_ error: any Error) -> Bool {
    guard case let .system(failure) = error as? EngineError else { return false }
    return failure.call == "seccomp" && failure.errno == EINVAL
}

@Test(arguments: [
    ("empty", [BPFInstruction]()),
    ("too long", [BPFInstruction](repeating: allow, count: 4097)),
    ("BPF_MOD", [ldNR, s(0x94, 3), allow]),
    ("BPF_NEG|BPF_X", [ldNR, s(0x8c), allow]),
    ("division by constant 0", [ldNR, s(0x34, 0), allow]),
    ("left shift by 32", [ldNR, s(0x64, 32), allow]),
    ("right shift by 40", [ldNR, s(0x74, 40), allow]),
    ("misaligned load", [s(0x20, 2), allow]),
    ("load past seccomp_data", [s(0x20, 64), allow]),
    ("half-word load", [s(0x28, 0), allow]),
    ("indirect load", [s(0x40, 0), allow]),
    ("RET X", [s(0x0e)]),
    ("unknown opcode", [s(0xff), allow]),
    ("opcode with high bits", [s(0x0104), allow]),
    ("scratch word 16", [s(0x02, 16), allow]),
    ("memory read before write", [s(0x60, 0), allow]),
    ("memory written on one branch only", [ldNR, j(0x15, 1, 0, 1), s(0x02, 5), s(0x60, 5), allow]),
    ("conditional jump past the end", [ldNR, j(0x15, 1, 1, 0), allow]),
    ("jump always past the end", [j(0x05, 1, 0, 0), allow]),
    ("last instruction not a return", [allow, ldNR]),
])
func seccompFilter_whenKernelWouldRejectIt_throwsEINVAL(reason: String, instructions: [BPFInstruction]) {
    #expect(performing: { try SeccompFilter(instructions: instructions) }, throws: isInvalidFilterError)
}

@Test(arguments: [
    ("one return", [allow]),
    ("4096 instructions", [BPFInstruction](repeating: allow, count: 4096)),
    ("shift by 31", [ldNR, s(0x64, 31), allow]),
    ("last word of seccomp_data", [s(0x20, 60), allow]),
    ("negate", [ldNR, s(0x84), allow]),
    ("memory written on both branches", [ldNR, j(0x15, 1, 0, 2), s(0x02, 5), j(0x05, 1, 0, 0), s(0x03, 5), s(0x60, 5), allow]),
    ("jump always to the last instruction", [j(0x05, 0, 0, 0), allow]),
    ("JSET X", [ldNR, j(0x4d, 0, 0, 0), allow]),
])
func seccompFilter_whenKernelWouldAcceptIt_keepsTheInstructions(reason: String, instructions: [BPFInstruction]) throws {
    #expect(try SeccompFilter(instructions: instructions).instructions == instructions)
}

@Test func seccompFilter_whenRejected_namesTheOffendingInstruction() {
    #expect {
        try SeccompFilter(instructions: [ldNR, ldNR, s(0x34, 0), allow])
    } throws: { error in
        (error as? EngineError)?.description.contains("instruction 2") == true
    }
}
