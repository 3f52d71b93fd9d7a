import Testing
@testable import Artifact

@Test func hex_roundTripsBytes() {
    let bytes: [UInt8] = [0x00, 0x7f, 0x80, 0xff, 0x12]
    #expect(Hex.encode(bytes) == "007f80ff12")
    #expect(Hex.decode("007F80ff12") == bytes)
}

@Test func hex_rejectsOddLengthAndNonHex() {
    #expect(Hex.decode("abc") == nil)
    #expect(Hex.decode("zz") == nil)
    #expect(BuildID(hex: "") == nil)
}

@Test func hexEncoding_coversEveryByteValueAndTheEmptyInput() {
    let every = (0...255).map { UInt8($0) }
    let encoded = Hex.encode(every)
    #expect(encoded.count == 512)
    #expect(encoded.hasPrefix("000102030405060708090a0b0c0d0e0f10") && encoded.hasSuffix("f9fafbfcfdfeff"))
    #expect(Hex.decode(encoded) == every)
    #expect(Hex.encode([UInt8]()) == "")
}
