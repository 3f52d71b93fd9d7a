/// Machine code appended in place, for the encoders a first apply runs for every process it loads
/// into (the program, the stub). A value with mutating methods: the encoders once appended through
/// nested functions over a captured array, which paid a run-time exclusivity check and an array
/// per instruction, some 9 µs a program (docs/PERFORMANCE.md, run 18).
struct MachineCode {
    /// The code so far.
    private(set) var bytes: [UInt8]

    /// An empty buffer with room for `capacity` bytes.
    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Code encoded before, to change a field of.
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// How many bytes so far: the offset of the next one.
    var count: Int { bytes.count }

    /// Appends one byte.
    @inline(__always)
    mutating func append(_ byte: UInt8) { bytes.append(byte) }

    /// Appends the bytes of an instruction (or its start).
    @inline(__always)
    mutating func append(_ instruction: [UInt8]) { bytes.append(contentsOf: instruction) }

    // Two to four bytes of an instruction, one at a time: written as an array literal, each one
    // was an array allocated and freed, dozens per program encoded (one per first apply).

    /// Appends two bytes.
    @inline(__always)
    mutating func append(_ first: UInt8, _ second: UInt8) {
        bytes.append(first)
        bytes.append(second)
    }

    /// Appends three bytes.
    @inline(__always)
    mutating func append(_ first: UInt8, _ second: UInt8, _ third: UInt8) {
        append(first, second)
        bytes.append(third)
    }

    /// Appends four bytes.
    @inline(__always)
    mutating func append(_ first: UInt8, _ second: UInt8, _ third: UInt8, _ fourth: UInt8) {
        append(first, second)
        append(third, fourth)
    }

    /// Appends `value` little-endian.
    @inline(__always)
    mutating func append<T: FixedWidthInteger>(littleEndian value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a 4-byte field to be set later (`setField(at:to:)`) and returns its offset.
    mutating func appendField() -> Int {
        let field = bytes.count
        append(littleEndian: UInt32(0))
        return field
    }

    /// Sets the 4-byte field at `offset` to `value`, little-endian.
    mutating func setField(at offset: Int, to value: Int32) {
        withUnsafeBytes(of: value.littleEndian) { field in
            for index in 0..<4 { bytes[offset + index] = field[index] }
        }
    }

    /// Sets the rel32 field at `offset` so that it reaches `target` (relative to the field's end).
    mutating func setDisplacement(at offset: Int, toReach target: Int) {
        setField(at: offset, to: Int32(target - (offset + 4)))
    }
}
