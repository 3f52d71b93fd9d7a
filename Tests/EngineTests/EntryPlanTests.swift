import Architecture
import Testing
@testable import Engine

private let original: [UInt8] = [0x55, 0x48, 0x89, 0xE5, 0x89, 0x7D, 0xFC, 0x8B, 0x45, 0xFC, 0x0F, 0xAF, 0xC0, 0x5D, 0xC3, 0x90]
private let entry: UInt64 = 0x5555_5555_1000
private let near: UInt64 = 0x5555_6000_0000
private let far: UInt64 = 0x7fff_f000_0000

@Test func classify_whenBytesAreOriginal_isOriginal() {
    #expect(EntryPlan.classify(memory: original, original: original, address: entry) { _ in true } == .original)
}

@Test func classify_whenOurJumpSitsAtEntry_isRedirected() {
    let memory = HostArchitecture.nearJump(from: entry, to: near)! + original[5...]
    #expect(EntryPlan.classify(memory: memory, original: original, address: entry) { $0 == near }
        == .redirected(target: near, jumpLength: 5))
}

@Test func classify_whenJumpLeadsOutsideOurImages_isForeign() {
    let memory = HostArchitecture.nearJump(from: entry, to: near)! + original[5...]
    #expect(EntryPlan.classify(memory: memory, original: original, address: entry) { _ in false } == .foreign)
}

@Test func classify_whenBreakpointAtEntry_isForeign() {
    var memory = original
    memory[0] = 0xCC
    #expect(EntryPlan.classify(memory: memory, original: original, address: entry) { _ in true } == .foreign)
}

@Test func write_fromOriginal_writesRelativeJumpWhenReachable() throws {
    let write = try EntryPlan.write(from: .original, memory: original, original: original, address: entry,
                                    target: near, symbol: "f")
    #expect(write?.bytes == HostArchitecture.nearJump(from: entry, to: near))
    #expect(write?.expected == Array(original[0..<5]))
}

@Test func write_whenAlreadyAtTarget_isNil() throws {
    let memory = HostArchitecture.nearJump(from: entry, to: near)! + original[5...]
    #expect(try EntryPlan.write(from: .redirected(target: near, jumpLength: 5), memory: memory,
                                original: original, address: entry, target: near, symbol: "f") == nil)
}

@Test func write_replacingAbsoluteByRelative_restoresTheBytesTheLongJumpHid() throws {
    let memory = HostArchitecture.farJump(to: far) + original[14...]
    let write = try EntryPlan.write(from: .redirected(target: far, jumpLength: 14), memory: memory,
                                    original: original, address: entry, target: near, symbol: "f")
    #expect(write?.bytes == HostArchitecture.nearJump(from: entry, to: near)! + original[5..<14])
    #expect(write?.window == entry..<(entry + 14))
}

@Test func write_revert_restoresExactlyTheJumpBytes() throws {
    let memory = HostArchitecture.nearJump(from: entry, to: near)! + original[5...]
    let write = try EntryPlan.write(from: .redirected(target: near, jumpLength: 5), memory: memory,
                                    original: original, address: entry, target: nil, symbol: "f")
    #expect(write?.bytes == Array(original[0..<5]))
    #expect(try EntryPlan.write(from: .original, memory: original, original: original, address: entry,
                                target: nil, symbol: "f") == nil)
}

@Test func write_whenForeign_refusesNamingTheSymbol() {
    #expect(throws: UnpatchableReason.entryBytesDiffer(symbol: "f", address: entry)) {
        try EntryPlan.write(from: .foreign, memory: original, original: original, address: entry, target: near, symbol: "f")
    }
}

@Test func write_whenFunctionShorterThanReachableJump_isTooShort() {
    let short = Array(original[0..<8])
    #expect(throws: UnpatchableReason.functionTooShort(symbol: "g", size: 8, needed: 14)) {
        try EntryPlan.write(from: .original, memory: short, original: short, address: entry, target: far, symbol: "g")
    }
    #expect(throws: UnpatchableReason.functionTooShort(symbol: "g", size: 4, needed: 5)) {
        try EntryPlan.write(from: .original, memory: Array(short[0..<4]), original: Array(short[0..<4]),
                            address: entry, target: near, symbol: "g")
    }
}
