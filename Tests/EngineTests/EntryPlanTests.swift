import Architecture
import Artifact
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

@Test func write_whenNearOnlyAndTargetOutOfNearReach_refusesWhereItWouldWriteTheFarJump() throws {
    #expect(throws: UnpatchableReason.noRoomForNearJump(symbol: "loop", address: entry, need: .branchTargetUnderFarJump)) {
        try EntryPlan.write(from: .original, memory: original, original: original, address: entry, nearOnly: true,
                            target: far, symbol: "loop")
    }
    // The same function without the mark takes the far jump.
    let write = try EntryPlan.write(from: .original, memory: original, original: original, address: entry, target: far, symbol: "loop")
    #expect(write?.bytes == HostArchitecture.farJump(to: far))
}

@Test func write_whenNearOnlyAndTargetInReach_writesTheNearJump() throws {
    let write = try EntryPlan.write(from: .original, memory: original, original: original, address: entry, nearOnly: true,
                                    target: near, symbol: "loop")
    #expect(write?.bytes == HostArchitecture.nearJump(from: entry, to: near))
}

// A 3-byte function (`xor %eax,%eax; ret`) after 5 bytes of padding: the classic hotpatch layout.
private let paddedRegion: [UInt8] = [0x90, 0x90, 0x90, 0x90, 0x90, 0x31, 0xC0, 0xC3]
private let paddedStart = entry - 5

@Test func write_withPadding_putsTheNearJumpInThePaddingAndAHopAtTheEntry() throws {
    let write = try #require(try EntryPlan.write(from: .original, memory: paddedRegion, original: paddedRegion,
                                                 address: paddedStart, padding: 5, target: near, symbol: "tiny"))
    #expect(write.address == paddedStart)
    #expect(write.bytes == HostArchitecture.nearJump(from: paddedStart, to: near)! + [0xEB, 0xF9])
    #expect(write.expected == Array(paddedRegion[0..<7]))
    // Only the entry's two bytes are a window: no thread runs the padding.
    #expect(write.window == entry..<(entry + 2))
}

@Test func classify_withPadding_recognisesTheHopAndItsJump() throws {
    let write = try #require(try EntryPlan.write(from: .original, memory: paddedRegion, original: paddedRegion,
                                                 address: paddedStart, padding: 5, target: near, symbol: "tiny"))
    let memory = write.bytes + paddedRegion[7...]
    #expect(EntryPlan.classify(memory: memory, original: paddedRegion, address: paddedStart, padding: 5) { $0 == near }
        == .redirected(target: near, jumpLength: 7))
    #expect(EntryPlan.classify(memory: memory, original: paddedRegion, address: paddedStart, padding: 5) { _ in false }
        == .foreign)
    // A hop that leads elsewhere is not ours.
    var strayHop = memory
    strayHop[6] = 0xFA
    #expect(EntryPlan.classify(memory: strayHop, original: paddedRegion, address: paddedStart, padding: 5) { _ in true }
        == .foreign)
}

@Test func write_withPadding_revertRestoresPaddingAndEntry() throws {
    let memory = HostArchitecture.nearJump(from: paddedStart, to: near)! + [0xEB, 0xF9] + paddedRegion[7...]
    let write = try #require(try EntryPlan.write(from: .redirected(target: near, jumpLength: 7), memory: memory,
                                                 original: paddedRegion, address: paddedStart, padding: 5,
                                                 target: nil, symbol: "tiny"))
    #expect(write.bytes == Array(paddedRegion[0..<7]))
    #expect(write.expected == Array(memory[0..<7]))
}

@Test func write_withPadding_whenImageOutOfNearReach_isTooShort() {
    #expect(throws: UnpatchableReason.functionTooShort(symbol: "tiny", size: 3, needed: 5)) {
        try EntryPlan.write(from: .original, memory: paddedRegion, original: paddedRegion, address: paddedStart,
                            padding: 5, target: paddedStart &+ (1 << 40), symbol: "tiny")
    }
}

@Test func isFiller_acceptsNopsAndTrapsOnly() {
    #expect(HostArchitecture.isFiller([0x90, 0x90, 0xCC, 0x90, 0x90]))
    #expect(HostArchitecture.isFiller([0x0F, 0x1F, 0x44, 0x00, 0x00]))
    #expect(HostArchitecture.isFiller([0x66, 0x2E, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00]))
    #expect(HostArchitecture.isFiller([0x66, 0x90, 0x0F, 0x1F, 0x00]))
    #expect(HostArchitecture.isFiller([]))
    // `ret`, a truncated nop, and a nop with a non-zero reg field are not filler.
    #expect(!HostArchitecture.isFiller([0x90, 0x90, 0x90, 0x90, 0xC3]))
    #expect(!HostArchitecture.isFiller([0x90, 0x90, 0x0F, 0x1F, 0x44]))
    #expect(!HostArchitecture.isFiller([0x0F, 0x1F, 0x48, 0x00, 0x90]))
}

@Test func entrySpan_withTwoEntriesOnOnePage_isOneWriteKeepingTheBytesBetween() throws {
    let low: UInt64 = 0x5555_5555_1000
    let span = EntrySpan(low: low, bytes: Array(0..<64))
    let first = EntryWrite(address: low, expected: [0, 1, 2, 3, 4], bytes: [0xE9, 1, 1, 1, 1])
    let second = EntryWrite(address: low + 40, expected: [40, 41, 42, 43, 44], bytes: [0xE9, 2, 2, 2, 2])
    #expect(span.bytes(at: second.address, count: 5) == [40, 41, 42, 43, 44])
    #expect(span.bytes(at: low + 62, count: 5) == nil)
    let merged = try #require(span.written(with: [first, second]))
    #expect(merged.count == 64)
    #expect(Array(merged[0..<5]) == first.bytes && Array(merged[40..<45]) == second.bytes)
    #expect(Array(merged[5..<40]) == Array(5..<40) && Array(merged[45...]) == Array(45..<64))
}

@Test func entrySpan_whenAPageBetweenTheEntriesHoldsNone_isNoSingleWrite() {
    // Entries at the end of one page and the start of the page after the next: the middle page
    // would become the process's own copy for nothing.
    let low: UInt64 = 0x5555_5555_0ff0
    let span = EntrySpan(low: low, bytes: [UInt8](repeating: 0x90, count: 0x1020))
    let first = EntryWrite(address: low, expected: [0x90], bytes: [0xCC])
    let third = EntryWrite(address: low + 0x1010, expected: [0x90], bytes: [0xCC])
    #expect(span.written(with: [first, third]) == nil)
    // Neighbouring pages, each written: one write.
    let second = EntryWrite(address: low + 0x0810, expected: [0x90], bytes: [0xCC])
    #expect(span.written(with: [first, second, third]) != nil)
}

@Test func relocationRuns_inOnePageOrPagesThatFollowOneAnother_areOneGroup_andAPageNoneWritesStartsAnother() {
    let page: UInt64 = 0x7f00_0000_0000
    let runs: [(address: UInt64, bytes: [UInt8])] = [
        (page + 0x10, [1, 1, 1, 1, 1, 1, 1, 1]), (page + 0x40, [2, 2, 2, 2, 2, 2, 2, 2]),
        (page + 0xffc, [3, 3, 3, 3, 3, 3, 3, 3]),  // crosses into the next page
        (page + 0x1008, [4, 4, 4, 4, 4, 4, 4, 4]),
        (page + 0x3000, [5, 5, 5, 5, 5, 5, 5, 5]),  // page 2 is written by none: a new group
        (page + 0x3ff8, [6, 6, 6, 6, 6, 6, 6, 6]), (page + 0x4000, [7, 7, 7, 7, 7, 7, 7, 7]),
        (page + 0x6000, [8, 8, 8, 8, 8, 8, 8, 8]),
    ]
    let groups = PatchLoader.pageGroups(runs)
    #expect(groups.map { $0.map(\.address) } == [[page + 0x10, page + 0x40, page + 0xffc, page + 0x1008],
                                                 [page + 0x3000, page + 0x3ff8, page + 0x4000], [page + 0x6000]])
    #expect(PatchLoader.pageGroups([]).isEmpty)
    // Each group is one span its runs can be laid over: every page of it written by one of them.
    for group in groups {
        let low = group[0].address, end = group.last!.address + UInt64(group.last!.bytes.count)
        let span = EntrySpan(low: low, bytes: [UInt8](repeating: 0xEE, count: Int(end - low)))
        let merged = span.written(withRuns: group)
        #expect(merged != nil, "group at 0x\(String(low, radix: 16))")
        for run in group {
            let offset = Int(run.address - low)
            #expect(merged.map { Array($0[offset..<(offset + run.bytes.count)]) } == run.bytes)
        }
    }
}

@Test func coalesce_mergesWordsAndTheZerosTheyTouch_layingWordsOverZeros() {
    let base: UInt64 = 0x7f00_0000_1000
    func word(_ offset: UInt64, _ value: UInt64) -> RelocationWrite { RelocationWrite(address: base + offset, value: value) }
    let runs = PatchLoader.coalesce([word(0x48, 0x1122_3344_5566_7788), word(0x08, 2), word(0x00, 1), word(0x68, 3)],
                                    zeros: [(base + 0x40, 8), (base + 0x50, 16), (base + 0x80, 0)])
    let expected: [(address: UInt64, bytes: [UInt8])] = [
        (base, [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
        // Zeros, the word right after them, zeros after it: one run.
        (base + 0x40, [UInt8](repeating: 0, count: 8) + [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11] + [UInt8](repeating: 0, count: 16)),
        // A gap of eight bytes: a run of its own.
        (base + 0x68, [3, 0, 0, 0, 0, 0, 0, 0]),
    ]
    #expect(runs.map(\.address) == expected.map(\.address))
    #expect(runs.map(\.bytes) == expected.map(\.bytes))
    // A word inside the zeros replaces the zeros it covers.
    let over = PatchLoader.coalesce([word(0x18, 0xff)], zeros: [(base + 0x10, 32)])
    #expect(over.count == 1 && over[0].address == base + 0x10)
    #expect(over[0].bytes == [UInt8](repeating: 0, count: 8) + [0xff] + [UInt8](repeating: 0, count: 23))
    #expect(PatchLoader.coalesce([]).isEmpty)
}

@Test func relocationSpan_laysEveryRunOverTheBytesReadAndKeepsTheRest() throws {
    let low: UInt64 = 0x7f00_0000_0010
    let span = EntrySpan(low: low, bytes: Array(0..<0x40))
    let merged = try #require(span.written(withRuns: [(low, [0xAA, 0xAA]), (low + 0x30, [0xBB, 0xBB, 0xBB])]))
    #expect(Array(merged[0..<2]) == [0xAA, 0xAA] && Array(merged[0x30..<0x33]) == [0xBB, 0xBB, 0xBB])
    #expect(Array(merged[2..<0x30]) == Array(2..<0x30) && Array(merged[0x33...]) == Array(0x33..<0x40))
    // A run that does not fit the bytes read is no span write.
    #expect(span.written(withRuns: [(low + 0x3f, [1, 2])]) == nil)
}

@Test func patchImageName_isTheLastPathComponent_evenWithTrailingSlashes() {
    #expect(PatchLoader.name(of: "/var/lib/hotpatch/objects/fix-1.so") == "fix-1.so")
    #expect(PatchLoader.name(of: "fix-ü.so") == "fix-ü.so")
    #expect(PatchLoader.name(of: "/a/b/ü/") == "ü")
    #expect(PatchLoader.name(of: "/") == "/")
    #expect(PatchLoader.name(of: "") == "")
}

@Test func processSees_isTrueOnlyForTheVeryFileThePatchWasParsedFrom() throws {
    // This process sees its own executable through its own /proc/PID/root.
    let path = try ProcFS.executablePath(of: .current)
    let parsed = try StartFile(path: path)
    #expect(PatchLoader.processSees(parsed, at: path, pid: .current))
    // Another file at the path (a replacement since the parse), or no file there, is not it.
    let another = try StartFile(path: "/proc/self/cmdline")
    #expect(another != parsed)
    #expect(!PatchLoader.processSees(another, at: path, pid: .current))
    #expect(!PatchLoader.processSees(parsed, at: path + "-missing", pid: .current))
}

@Test func span_ofRegionsWithin4KiB_isOneReadHoldingEach_andOfRegionsFartherApartOrOneAlone_isNone() throws {
    // This process's own memory: a buffer whose bytes are known, read through /proc/self/mem.
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * 4096, alignment: 4096)
    defer { buffer.deallocate() }
    for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index &* 7) }
    let base = UInt64(UInt(bitPattern: buffer.baseAddress!))
    let memory = try ProcessMemory(pid: .current)
    let regions = [(address: base + 0x10, count: 18), (address: base + 0x22, count: 16), (address: base + 0x800, count: 8)]
    let found = Patcher.span(of: regions, memory: memory)
    let span = try #require(found)
    #expect(span.low == base + 0x10 && span.bytes.count == 0x808 - 0x10)
    for region in regions {
        let offset = Int(region.address - base)
        #expect(span.bytes(at: region.address, count: region.count) == Array(buffer[offset..<(offset + region.count)]))
    }
    #expect(span.bytes(at: base + 0x808, count: 1) == nil, "past the span")
    let apart = Patcher.span(of: [(address: base, count: 8), (address: base + 4096, count: 8)], memory: memory)
    #expect(apart == nil, "more than 4 KiB")
    let alone = Patcher.span(of: [(address: base, count: 8)], memory: memory)
    #expect(alone == nil, "one region is read on its own")
}
