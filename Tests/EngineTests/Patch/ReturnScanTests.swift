import Testing
@testable import Engine

/// The stack words the stop window takes for a thread that will come back inside a patch window.
@Suite struct ReturnScanTests {
    private static func stack(_ words: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        for word in words { bytes.appendLittleEndian(word) }
        return bytes
    }

    private let window: Range<UInt64> = 0x40_1000..<0x40_1005

    @Test func aSavedAddressPastTheFirstByte_isFound() {
        #expect(Patcher.firstAddressStrictlyInside([window], in: Self.stack([7, 0x7fff_0000, 0x40_1003, 0x40_1001])) == 0x40_1003)
        #expect(Patcher.firstAddressStrictlyInside([window], in: Self.stack([0x40_1004])) == 0x40_1004)
    }

    @Test func aPointerToTheEntry_orTheFirstByteAfterTheWindow_isNotFound() {
        // A function pointer (the entry) runs the new jump whole; the window's end is outside it.
        #expect(Patcher.firstAddressStrictlyInside([window], in: Self.stack([0x40_1000, 0x40_1005, 0x40_0fff])) == nil)
    }

    @Test func everyWindowIsLookedAt() {
        let far: Range<UInt64> = 0x7f00_0000_1000..<0x7f00_0000_100e
        #expect(Patcher.firstAddressStrictlyInside([window, far], in: Self.stack([0x40_2000, 0x7f00_0000_100d])) == 0x7f00_0000_100d)
        // Between two windows, inside neither.
        #expect(Patcher.firstAddressStrictlyInside([window, far], in: Self.stack([0x40_2000])) == nil)
    }

    @Test func onlyWholeWordsAtMultiplesOfEight_count() {
        // The same address 4 bytes off a word boundary, and cut short by the end of the bytes read.
        var shifted: [UInt8] = [0, 0, 0, 0]
        shifted.appendLittleEndian(UInt64(0x40_1002))
        shifted.append(contentsOf: [0, 0, 0, 0])
        #expect(Patcher.firstAddressStrictlyInside([window], in: shifted) == nil)
        #expect(Patcher.firstAddressStrictlyInside([window], in: Array(Self.stack([0, 0x40_1002]).dropLast())) == nil)
    }

    @Test func noWindows_orNoBytes_findNothing() {
        #expect(Patcher.firstAddressStrictlyInside([], in: Self.stack([0x40_1002])) == nil)
        #expect(Patcher.firstAddressStrictlyInside([window], in: []) == nil)
    }
}
