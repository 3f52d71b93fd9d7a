import Testing
@testable import Engine

@Test func jump_relative_encodesDisplacementFromInstructionEnd() {
    let bytes = Jump.relative(from: 0x1000, to: 0x2000)
    #expect(bytes == [0xE9, 0xFB, 0x0F, 0x00, 0x00])
    #expect(Jump.decode(bytes!, at: 0x1000)?.target == 0x2000)
}

@Test func jump_relative_backwardsDecodesToTheSameTarget() {
    let bytes = Jump.relative(from: 0x7f00_0000_5000, to: 0x7f00_0000_1000)!
    #expect(Jump.decode(bytes, at: 0x7f00_0000_5000)! == (0x7f00_0000_1000, 5))
}

@Test func jump_relative_whenTargetBeyond2GiB_isNil() {
    #expect(Jump.relative(from: 0x1000, to: 0x1000 + (1 << 32)) == nil)
}

@Test func jump_best_whenOutOfReach_usesAbsoluteIfRoomAllows() {
    let far: UInt64 = 0x7fff_0000_0000
    #expect(Jump.best(from: 0x40_0000, to: far, room: 14)?.count == 14)
    #expect(Jump.best(from: 0x40_0000, to: far, room: 13) == nil)
    #expect(Jump.best(from: 0x40_0000, to: 0x40_1000, room: 5)?.count == 5)
    #expect(Jump.best(from: 0x40_0000, to: 0x40_1000, room: 4) == nil)
}

@Test func jump_decode_recognisesAbsoluteJumpAndRejectsOtherBytes() {
    let bytes = Jump.absolute(to: 0x1122_3344_5566_7788)
    #expect(Jump.decode(bytes, at: 0)! == (0x1122_3344_5566_7788, 14))
    #expect(Jump.decode([0x55, 0x48, 0x89, 0xE5, 0x90], at: 0) == nil)
    #expect(Jump.decode([0xCC, 0, 0, 0, 0], at: 0) == nil)
    #expect(Jump.decode([0xE9, 0], at: 0) == nil)
}
