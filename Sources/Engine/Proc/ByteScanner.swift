import Glibc

/// A forward cursor over the bytes of one /proc file, for parsers that must not allocate per field.
///
/// /proc files are parsed for every process on every scan, so fields are read by hand from bytes
/// (FIELD-NOTES: `String.split` cost ~6x a byte walk on a 30-line maps file).
struct ByteScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    /// True when every byte has been consumed.
    var isAtEnd: Bool { index >= bytes.count }

    /// Whether `field` is exactly `text`: a length test, then one `memcmp` (no generic sequence
    /// walk, no array of the text to make: a status file's fifty-odd keys meet it per process).
    static func equals(_ field: UnsafeBufferPointer<UInt8>, _ text: StaticString) -> Bool {
        guard field.count == text.utf8CodeUnitCount else { return false }
        guard let base = field.baseAddress else { return true }
        return memcmp(base, text.utf8Start, field.count) == 0
    }

    /// The byte under the cursor, or nil at the end.
    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// Consumes `byte` if it is next; says whether it was.
    mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// Skips any run of spaces and tabs.
    mutating func skipBlanks() {
        while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") {
            index += 1
        }
    }

    /// The index of the next `byte` at or after the cursor, or the end index. memchr(3), which
    /// reads a vector at a time: every line of every status and maps file is found this way.
    func next(_ byte: UInt8) -> Int {
        guard index < bytes.count, let base = bytes.baseAddress else { return max(index, bytes.count) }
        guard let found = memchr(base + index, Int32(byte), bytes.count - index) else { return bytes.count }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }

    /// Reads one or more hex digits (either case); nil when none is there or the value overflows.
    mutating func hex() -> UInt64? {
        let start = index
        var value: UInt64 = 0
        while index < bytes.count {
            let digit: UInt8
            switch bytes[index] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = bytes[index] &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = bytes[index] &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = bytes[index] &- UInt8(ascii: "A") &+ 10
            default: return index > start ? value : nil
            }
            if value >> 60 != 0 { return nil }
            value = value << 4 | UInt64(digit)
            index += 1
        }
        return index > start ? value : nil
    }

    /// Reads one or more decimal digits; nil when none is there or the value overflows.
    mutating func decimal() -> UInt64? {
        let start = index
        var value: UInt64 = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(bytes[index] &- UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = sum
            index += 1
        }
        return index > start ? value : nil
    }

    /// The text of `bytes[range]`, decoded as UTF-8 (invalid sequences become U+FFFD).
    func text(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}
