import Testing
@testable import Engine

@Test func byteScannerNext_findsTheFirstByteFromTheCursor_orGivesTheEnd() {
    let text = Array("Name:\tcat\nState:\tS\n".utf8)
    text.withUnsafeBufferPointer { buffer in
        var scanner = ByteScanner(buffer)
        #expect(scanner.next(UInt8(ascii: ":")) == 4)
        #expect(scanner.next(UInt8(ascii: "\n")) == 9)
        scanner.index = 9
        #expect(scanner.next(UInt8(ascii: "\n")) == 9, "the byte under the cursor counts")
        scanner.index = 10
        #expect(scanner.next(UInt8(ascii: "\n")) == 18)
        #expect(scanner.next(UInt8(ascii: "#")) == text.count, "absent: the end")
        scanner.index = text.count
        #expect(scanner.next(UInt8(ascii: "\n")) == text.count, "at the end: the end")
    }
    [UInt8]().withUnsafeBufferPointer { empty in
        #expect(ByteScanner(empty).next(UInt8(ascii: "\n")) == 0)
    }
}
