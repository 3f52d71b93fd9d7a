import Architecture
import Glibc
import Testing
@testable import Engine

// Opcodes spelled as in linux/filter.h, so the filters below read like the C they model.
private let LD_W_ABS: UInt16 = 0x20, LD_W_LEN: UInt16 = 0x80, LDX_W_LEN: UInt16 = 0x81
private let LD_IMM: UInt16 = 0x00, LDX_IMM: UInt16 = 0x01, LD_MEM: UInt16 = 0x60, LDX_MEM: UInt16 = 0x61
private let ST: UInt16 = 0x02, STX: UInt16 = 0x03, TAX: UInt16 = 0x07, TXA: UInt16 = 0x87
private let RET_K: UInt16 = 0x06, RET_A: UInt16 = 0x16, ALU: UInt16 = 0x04, NEG: UInt16 = 0x84
private let JA: UInt16 = 0x05, JEQ: UInt16 = 0x15, JGT: UInt16 = 0x25, JGE: UInt16 = 0x35, JSET: UInt16 = 0x45
private let X: UInt16 = 0x08
private let ALLOW: UInt32 = 0x7fff_0000, ERRNO: UInt32 = 0x0005_0000

private func s(_ code: UInt16, _ k: UInt32 = 0) -> BPFInstruction { BPFInstruction(code: code, k: k) }
private func j(_ code: UInt16, _ k: UInt32, _ jt: UInt8, _ jf: UInt8) -> BPFInstruction {
    BPFInstruction(code: code, jumpIfTrue: jt, jumpIfFalse: jf, k: k)
}

/// The value `instructions` leave in A, returned with RET A.
private func accumulator(_ instructions: [BPFInstruction], _ data: SeccompData = SeccompData(systemCall: 0)) throws -> UInt32 {
    SeccompEvaluator.returnValue(of: try SeccompFilter(instructions: instructions + [s(RET_A)]), for: data)
}

private let sample = SeccompData(systemCall: 257, architecture: X86_64.auditArchitecture, instructionPointer: 0x1122_3344_5566_7788,
                                 arguments: [0x1_0000_0002, 0xaaaa_bbbb_cccc_dddd, 3, 4, 5, 0xffff_ffff_0000_0006])

@Test(arguments: [
    (UInt32(0), UInt32(257)), (4, 0xC000_003E), (8, 0x5566_7788), (12, 0x1122_3344),
    (16, 2), (20, 1), (24, 0xcccc_dddd), (28, 0xaaaa_bbbb), (32, 3), (36, 0), (56, 6), (60, 0xffff_ffff),
])
func bpfLoad_absoluteWordOfSeccompData_readsLittleEndianHalves(offset: UInt32, expected: UInt32) throws {
    #expect(try accumulator([s(LD_W_ABS, offset)], sample) == expected)
}

@Test func bpfLoad_whenArgumentsAreMissing_readsZeroAndNegativeCallNumberAsBitPattern() throws {
    let data = SeccompData(systemCall: -1, arguments: [7])
    #expect(try accumulator([s(LD_W_ABS, 0)], data) == 0xffff_ffff)
    #expect(try accumulator([s(LD_W_ABS, 16)], data) == 7)
    #expect(try accumulator([s(LD_W_ABS, 40)], data) == 0)
}

@Test func bpfLoad_lengthImmediateAndScratchMemory_behaveAsInTheKernel() throws {
    #expect(try accumulator([s(LD_W_LEN)]) == 64)
    #expect(try accumulator([s(LDX_W_LEN), s(TXA)]) == 64)
    #expect(try accumulator([s(LD_IMM, 0xdead_beef)]) == 0xdead_beef)
    #expect(try accumulator([s(LDX_IMM, 42), s(TXA)]) == 42)
    #expect(try accumulator([s(LD_IMM, 5), s(ST, 15), s(LD_IMM, 0), s(LD_MEM, 15)]) == 5)
    #expect(try accumulator([s(LDX_IMM, 9), s(STX, 0), s(LDX_IMM, 1), s(LDX_MEM, 0), s(TXA)]) == 9)
    #expect(try accumulator([s(LD_IMM, 3), s(TAX), s(LD_IMM, 0), s(TXA)]) == 3)
}

@Test func bpfMachine_registersStartAtZero() throws {
    #expect(try accumulator([]) == 0)
    #expect(try accumulator([s(TXA)]) == 0)
}

// (operation bits, A, operand, result): each run once with K and once with X.
@Test(arguments: [
    (UInt16(0x00), UInt32(0xffff_ffff), UInt32(2), UInt32(1)),      // ADD wraps
    (0x10, 1, 2, 0xffff_ffff),                                      // SUB wraps
    (0x20, 0x8000_0001, 2, 2),                                      // MUL wraps
    (0x30, 7, 2, 3),                                                // DIV unsigned
    (0x30, 0xffff_fffe, 2, 0x7fff_ffff),
    (0x40, 0xf0, 0x0f, 0xff),                                       // OR
    (0x50, 0xf3, 0x0f, 0x03),                                       // AND
    (0xa0, 0xff, 0x0f, 0xf0),                                       // XOR
    (0x60, 1, 31, 0x8000_0000),                                     // LSH
    (0x70, 0x8000_0000, 31, 1),                                     // RSH logical
])
func bpfArithmetic_withConstantOrX_computesOn32Bits(operation: UInt16, a: UInt32, operand: UInt32, result: UInt32) throws {
    #expect(try accumulator([s(LD_IMM, a), s(ALU | operation, operand)]) == result)
    #expect(try accumulator([s(LDX_IMM, operand), s(LD_IMM, a), s(ALU | operation | X)]) == result)
}

@Test func bpfArithmetic_negate_wrapsToTwosComplement() throws {
    #expect(try accumulator([s(LD_IMM, 1), s(NEG)]) == 0xffff_ffff)
    #expect(try accumulator([s(LD_IMM, 0), s(NEG)]) == 0)
}

@Test func bpfArithmetic_shiftByXOf32OrMore_usesLowFiveBitsLikeTheKernel() throws {
    #expect(try accumulator([s(LDX_IMM, 33), s(LD_IMM, 1), s(ALU | 0x60 | X)]) == 2)
    #expect(try accumulator([s(LDX_IMM, 32), s(LD_IMM, 0x10), s(ALU | 0x70 | X)]) == 0x10)
}

@Test func bpfArithmetic_divisionByXZero_endsFilterWithZeroWhichKillsTheThread() throws {
    let filter = try SeccompFilter(instructions: [s(LDX_IMM, 0), s(LD_IMM, 10), s(ALU | 0x30 | X), s(RET_K, ALLOW)])
    #expect(SeccompEvaluator.returnValue(of: filter, for: SeccompData(systemCall: 0)) == 0)
    #expect(SeccompEvaluator.evaluate([filter], for: SeccompData(systemCall: 0)) == .killThread)
}

// (jump opcode, A, operand, taken)
@Test(arguments: [
    (JEQ, UInt32(5), UInt32(5), true), (JEQ, 5, 6, false),
    (JGT, 6, 5, true), (JGT, 5, 5, false), (JGT, 0xffff_ffff, 1, true),   // unsigned
    (JGE, 5, 5, true), (JGE, 4, 5, false),
    (JSET, 0b1010, 0b0010, true), (JSET, 0b1010, 0b0101, false),
])
func bpfJump_conditionalWithConstantOrX_takesTheRightBranch(code: UInt16, a: UInt32, operand: UInt32, taken: Bool) throws {
    let expected: UInt32 = taken ? 1 : 2
    let withK = try SeccompFilter(instructions: [
        s(LD_IMM, a), j(code, operand, 1, 0), s(RET_K, 2), s(RET_K, 1)])
    let withX = try SeccompFilter(instructions: [
        s(LDX_IMM, operand), s(LD_IMM, a), j(code | X, 0, 0, 1), s(RET_K, 1), s(RET_K, 2)])
    #expect(SeccompEvaluator.returnValue(of: withK, for: sample) == expected)
    #expect(SeccompEvaluator.returnValue(of: withX, for: sample) == expected)
}

@Test func bpfJump_always_skipsKInstructions() throws {
    let filter = try SeccompFilter(instructions: [j(JA, 2, 0, 0), s(RET_K, 1), s(RET_K, 2), s(RET_K, 3)])
    #expect(SeccompEvaluator.returnValue(of: filter, for: sample) == 3)
}

@Test func bpfReturn_constantOrAccumulator_isTheFilterResult() throws {
    #expect(SeccompEvaluator.returnValue(of: try SeccompFilter(instructions: [s(RET_K, 0x1234)]), for: sample) == 0x1234)
    #expect(try accumulator([s(LD_IMM, ERRNO | 13)]) == ERRNO | 13)
}

@Test(arguments: [
    (UInt32(0x7fff_0000), SeccompAction.allow), (0x7fff_1234, .allow), (0x7ffc_0000, .log),
    (0x7ff0_0007, .trace(7)), (0x7fc0_0000, .userNotify), (0x0005_000d, .errno(13)),
    (0x0005_ffff, .errno(4095)), (0x0003_0042, .trap(0x42)), (0x0000_0000, .killThread),
    (0x0000_0001, .killThread), (0x8000_0000, .killProcess), (0x0001_0000, .killProcess),
    (0x7ffe_0000, .killProcess), (0xffff_0000, .killProcess),
])
func seccompAction_fromReturnValue_mapsLikeTheKernelIncludingUnknownValues(value: UInt32, action: SeccompAction) {
    #expect(SeccompAction(returnValue: value) == action)
}

private func constant(_ value: UInt32) throws -> SeccompFilter { try SeccompFilter(instructions: [s(RET_K, value)]) }

@Test func seccompEvaluate_whenFiltersDisagree_theMostRestrictiveActionWins() throws {
    let order: [UInt32] = [0x8000_0000, 0, 0x0003_0001, 0x0005_0001, 0x7fc0_0000, 0x7ff0_0001, 0x7ffc_0000, 0x7fff_0000]
    for (rank, stronger) in order.enumerated() {
        for weaker in order[rank...] {
            let expected = SeccompAction(returnValue: stronger)
            #expect(SeccompEvaluator.evaluate([try constant(weaker), try constant(stronger)], for: sample) == expected)
            #expect(SeccompEvaluator.evaluate([try constant(stronger), try constant(weaker)], for: sample) == expected)
        }
    }
}

@Test func seccompEvaluate_whenActionsAreEqual_theMostRecentFiltersDataWins() throws {
    #expect(SeccompEvaluator.evaluate([try constant(ERRNO | 2), try constant(ERRNO | 1)], for: sample) == .errno(2))
}

@Test func seccompEvaluate_unknownActionRanksByValueAndKillsOnlyIfItWins() throws {
    let unknownHigh = try constant(0x7ffe_0000), log = try constant(0x7ffc_0000)
    #expect(SeccompEvaluator.evaluate([unknownHigh], for: sample) == .killProcess)
    #expect(SeccompEvaluator.evaluate([unknownHigh, log], for: sample) == .log)
    #expect(SeccompEvaluator.evaluate([try constant(0x0001_0000), try constant(0x0003_0000)], for: sample) == .killProcess)
}

@Test func seccompEvaluate_withNoFilters_allows() {
    #expect(SeccompEvaluator.evaluate([], for: sample) == .allow)
    #expect(SeccompAction.allow.letsCallRun && SeccompAction.log.letsCallRun && !SeccompAction.errno(1).letsCallRun)
}
