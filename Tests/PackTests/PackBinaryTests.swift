import Foundation
import Testing

@Test func packBinary_isBuiltBesideTheTests() {
    // The CLI tests run the real binary; it sits in the same build products folder as the test bundle.
    #expect(FileManager.default.isExecutableFile(atPath: Products.hotpatchPack), "\(Products.hotpatchPack)")
}
