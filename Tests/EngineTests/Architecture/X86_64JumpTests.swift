import Architecture
import Testing

@Test func x86_64NearJump_encodesDisplacementFromInstructionEnd() {
    let bytes = X86_64.nearJump(from: 0x1000, to: 0x2000)
    #expect(bytes == [0xE9, 0xFB, 0x0F, 0x00, 0x00])
    #expect(X86_64.decodeJump(bytes!, at: 0x1000)?.target == 0x2000)
}

@Test func x86_64NearJump_backwardsDecodesToTheSameTarget() {
    let bytes = X86_64.nearJump(from: 0x7f00_0000_5000, to: 0x7f00_0000_1000)!
    #expect(X86_64.decodeJump(bytes, at: 0x7f00_0000_5000)! == (0x7f00_0000_1000, 5))
}

@Test func x86_64NearJump_whenTargetBeyond2GiB_isNil() {
    #expect(X86_64.nearJump(from: 0x1000, to: 0x1000 + (1 << 32)) == nil)
    // The reach the loader keeps to is inside what the displacement reaches, both ways.
    #expect(X86_64.nearJump(from: 0x1_0000_0000, to: 0x1_0000_0000 + X86_64.nearJumpReach) != nil)
    #expect(X86_64.nearJump(from: 0x1_0000_0000 + X86_64.nearJumpReach, to: 0x1_0000_0000) != nil)
}

@Test func bestJump_whenOutOfReach_usesTheFarJumpIfRoomAllows() {
    let far: UInt64 = 0x7fff_0000_0000
    #expect(X86_64.bestJump(from: 0x40_0000, to: far, room: 14)?.count == 14)
    #expect(X86_64.bestJump(from: 0x40_0000, to: far, room: 13) == nil)
    #expect(X86_64.bestJump(from: 0x40_0000, to: 0x40_1000, room: 5)?.count == 5)
    #expect(X86_64.bestJump(from: 0x40_0000, to: 0x40_1000, room: 4) == nil)
}

@Test func x86_64DecodeJump_recognisesTheFarJumpAndRejectsOtherBytes() {
    let bytes = X86_64.farJump(to: 0x1122_3344_5566_7788)
    #expect(bytes.count == X86_64.farJumpLength)
    #expect(X86_64.decodeJump(bytes, at: 0)! == (0x1122_3344_5566_7788, 14))
    #expect(X86_64.decodeJump([0x55, 0x48, 0x89, 0xE5, 0x90], at: 0) == nil)
    #expect(X86_64.decodeJump([0xCC, 0, 0, 0, 0], at: 0) == nil)
    #expect(X86_64.decodeJump([0xE9, 0], at: 0) == nil)
}

@Test func x86_64Jumps_roundTripThroughDecodeForEveryDistance() {
    let address: UInt64 = 0x5555_0000_0000
    for distance in [0, 1, 127, -5, 1 << 20, -(1 << 30), Int64(Int32.max) - 5, Int64(Int32.min) + 5] {
        let target = address &+ UInt64(bitPattern: distance)
        let near = X86_64.nearJump(from: address, to: target)!
        #expect(near.count == X86_64.nearJumpLength)
        #expect(X86_64.decodeJump(near, at: address)! == (target, 5), "distance \(distance)")
        #expect(X86_64.decodeJump(X86_64.farJump(to: target), at: address)! == (target, 14))
    }
}

@Test func x86_64FirstSystemCallInstruction_findsTheFirstAtAnyOffset() {
    #expect(X86_64.firstSystemCallInstruction(in: [0x90, 0x0F, 0x0F, 0x05, 0x0F, 0x05]) == 2)
    #expect(X86_64.firstSystemCallInstruction(in: X86_64.systemCallInstruction) == 0)
    #expect(X86_64.firstSystemCallInstruction(in: [0x05, 0x0F]) == nil)
    #expect(X86_64.firstSystemCallInstruction(in: []) == nil)
}
