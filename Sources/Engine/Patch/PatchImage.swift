import Architecture

/// A patch object mapped into a process by the Engine. The page before the image holds a record
/// that marks it as complete (written last, after relocation), so an image half-loaded by an agent
/// killed mid-way is never mistaken for a usable one, and our jumps are recognised from memory alone.
struct PatchImage: Equatable {
    /// The patch object's load base.
    let base: UInt64
    /// Its page-rounded size.
    let size: UInt64
    /// The patch object's file name (unique per content).
    let name: String

    /// Whether `address` lies inside the image.
    func contains(_ address: UInt64) -> Bool { address >= base && address - base < size }
}

/// The record in the marker page before each image.
enum PatchImageMarker {
    /// 16 bytes that open the record.
    static let magic: [UInt8] = Array("HOTPATCH-AGENT".utf8) + [0, 1]
    /// The marker page's size.
    static let pageSize = HostArchitecture.pageSize
    /// Where the injection stub starts in the marker page: after the record (at most 289 bytes)
    /// and the path written for `openat`, which must stay shorter than this.
    static let stubOffset: UInt64 = 0xE00
    /// Longest name kept in the record.
    static let maximumNameLength = 255

    /// The record for `image`.
    static func encode(_ image: PatchImage) -> [UInt8] {
        var bytes = magic
        bytes.appendLittleEndian(image.base)
        bytes.appendLittleEndian(image.size)
        let name = Array(image.name.utf8.prefix(maximumNameLength))
        bytes.appendLittleEndian(UInt16(name.count))
        bytes.append(contentsOf: name)
        return bytes
    }

    /// The image a record describes, if `bytes` (read from the start of a marker page) hold one.
    static func decode(_ bytes: [UInt8]) -> PatchImage? {
        let header = magic.count + 8 + 8 + 2
        guard bytes.count >= header, Array(bytes[0..<magic.count]) == magic else { return nil }
        func word(_ at: Int) -> UInt64 { bytes[at..<at + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian }
        let base = word(magic.count)
        let size = word(magic.count + 8)
        let length = Int(bytes[header - 2]) | Int(bytes[header - 1]) << 8
        guard length <= maximumNameLength, bytes.count >= header + length else { return nil }
        let name = String(decoding: bytes[header..<header + length], as: UTF8.self)
        return PatchImage(base: base, size: size, name: name)
    }

    /// Every complete image in a process: an anonymous read-only (or r-x) mapping directly followed by
    /// another, whose last page holds a record pointing just past it.
    static func images(in mappings: [MemoryMapping], memory: borrowing ProcessMemory) -> [PatchImage] {
        var found: [PatchImage] = []
        for (index, mapping) in mappings.enumerated().dropLast() {
            // Read-only, or read and execute since it holds the injection stub.
            guard mapping.inode == 0, mapping.path.isEmpty, mapping.isReadable, !mapping.isWritable,
                  mappings[index + 1].start == mapping.end,
                  mapping.size >= pageSize else { continue }
            let count = magic.count + 18 + maximumNameLength
            guard let bytes = try? memory.read(at: mapping.end - pageSize, count: count),
                  let image = decode(bytes), image.base == mapping.end else { continue }
            found.append(image)
        }
        return found
    }
}
