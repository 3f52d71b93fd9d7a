/// A fixed-size little-endian record inside a byte array, bounds-checked once when it is made, so
/// field reads at constant offsets below `size` cannot run past the data.
struct ByteRecord {
    let bytes: [UInt8]
    let base: Int
    let size: Int

    /// The record of `size` bytes at `offset`, or nil when it does not fit in `bytes`.
    init?(_ bytes: [UInt8], at offset: Int, size: Int) {
        guard offset >= 0, size >= 0, offset <= bytes.count, size <= bytes.count - offset else { return nil }
        self.bytes = bytes
        self.base = offset
        self.size = size
    }

    func u8(_ field: Int) -> UInt8 {
        precondition(field >= 0 && field < size, "field outside record: a programming error, not bad data")
        return bytes[base + field]
    }

    func u16(_ field: Int) -> UInt16 { UInt16(u8(field)) | UInt16(u8(field + 1)) << 8 }

    func u32(_ field: Int) -> UInt32 { UInt32(u16(field)) | UInt32(u16(field + 2)) << 16 }

    func u64(_ field: Int) -> UInt64 { UInt64(u32(field)) | UInt64(u32(field + 4)) << 32 }

    func i64(_ field: Int) -> Int64 { Int64(bitPattern: u64(field)) }
}

/// Checked conversions between the file's 64-bit quantities and Swift's `Int` indices.
enum ByteRange {
    /// The index range of `size` bytes at `offset` when it lies inside `0..<limit`, else nil.
    static func within(offset: UInt64, size: UInt64, limit: Int) -> Range<Int>? {
        guard let start = Int(exactly: offset), let length = Int(exactly: size),
              start <= limit, length <= limit - start else { return nil }
        return start..<(start + length)
    }

    /// `value` rounded down to a multiple of `alignment` (a power of two).
    static func alignDown(_ value: UInt64, _ alignment: UInt64) -> UInt64 { value & ~(alignment - 1) }

    /// `value` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
    static func alignUp(_ value: UInt64, _ alignment: UInt64) -> UInt64? {
        let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
        return overflow ? nil : sum & ~(alignment - 1)
    }

    /// `a + b`, or nil when it overflows.
    static func add(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : sum
    }

    /// `a * b`, or nil when it overflows.
    static func multiply(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : product
    }
}

/// `0x`-prefixed lowercase hex, the way readelf prints offsets, for error messages.
func elfHex<Value: BinaryInteger>(_ value: Value) -> String { "0x" + String(value, radix: 16) }
