import Foundation
import Testing

@Test func packBinary_isBuiltBesideTheTests() {
    // The CLI tests run the real binary; it sits in the same build products folder as the test bundle.
    let products = Bundle.main.bundleURL.deletingLastPathComponent()
    let candidates = [products, Bundle.main.bundleURL].map { $0.appendingPathComponent("hotpatch-pack").path }
    #expect(candidates.contains { FileManager.default.isExecutableFile(atPath: $0) })
}
