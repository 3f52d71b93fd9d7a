import Testing
@testable import Engine

@Test func marker_roundTripsImageRecord() {
    let image = PatchImage(base: 0x7f12_3456_7000, size: 0x5000, name: "3f2a…9c.so")
    #expect(PatchImageMarker.decode(PatchImageMarker.encode(image) + [0, 0, 0]) == image)
}

@Test func marker_whenMagicOrLengthIsWrong_decodesNothing() {
    var bytes = PatchImageMarker.encode(PatchImage(base: 0x1000, size: 0x1000, name: "p.so"))
    #expect(PatchImageMarker.decode(Array(bytes.prefix(20))) == nil)
    bytes[0] ^= 0xff
    #expect(PatchImageMarker.decode(bytes) == nil)
    #expect(PatchImageMarker.decode([UInt8](repeating: 0, count: 4096)) == nil)
}
