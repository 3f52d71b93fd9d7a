/// The two jumps the Engine writes at a function's entry, and their recognition.
public enum Jump {
    /// `jmp rel32`: E9 and a 32-bit displacement from the end of the instruction.
    public static let relativeLength = 5
    /// `jmp [rip+0]` followed by the 64-bit target: FF 25 00000000 <target>.
    public static let absoluteLength = 14

    /// `jmp rel32` from `address` to `target`, or nil if the target is out of ±2 GiB reach.
    public static func relative(from address: UInt64, to target: UInt64) -> [UInt8]? {
        let next = address &+ UInt64(relativeLength)
        let displacement = Int64(bitPattern: target &- next)
        guard let value = Int32(exactly: displacement) else { return nil }
        var bytes: [UInt8] = [0xE9]
        bytes.appendLittleEndian(value)
        return bytes
    }

    /// The 14-byte absolute jump to `target`.
    public static func absolute(to target: UInt64) -> [UInt8] {
        var bytes: [UInt8] = [0xFF, 0x25, 0, 0, 0, 0]
        bytes.appendLittleEndian(target)
        return bytes
    }

    /// The shortest jump from `address` to `target` that fits in `room` bytes, or nil if none does.
    public static func best(from address: UInt64, to target: UInt64, room: UInt64) -> [UInt8]? {
        if room >= UInt64(relativeLength), let near = relative(from: address, to: target) { return near }
        if room >= UInt64(absoluteLength) { return absolute(to: target) }
        return nil
    }

    /// The target and length of a jump of ours at the start of `bytes` (placed at `address`).
    public static func decode(_ bytes: [UInt8], at address: UInt64) -> (target: UInt64, length: Int)? {
        if bytes.count >= relativeLength, bytes[0] == 0xE9 {
            let value = bytes[1..<5].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }.littleEndian
            let target = address &+ UInt64(relativeLength) &+ UInt64(bitPattern: Int64(value))
            return (target, relativeLength)
        }
        if bytes.count >= absoluteLength, bytes[0] == 0xFF, bytes[1] == 0x25,
           bytes[2] == 0, bytes[3] == 0, bytes[4] == 0, bytes[5] == 0 {
            let target = bytes[6..<14].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
            return (target, absoluteLength)
        }
        return nil
    }
}
