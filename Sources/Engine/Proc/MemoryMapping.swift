import Glibc

/// One line of /proc/PID/maps: a range of the process's address space and what backs it.
public struct MemoryMapping: Sendable, Hashable {
    /// First address of the mapping.
    public var start: UInt64
    /// First address past the mapping.
    public var end: UInt64
    /// The mapping may be read (`r`).
    public var isReadable: Bool
    /// The mapping may be written (`w`).
    public var isWritable: Bool
    /// The mapping may be executed (`x`).
    public var isExecutable: Bool
    /// The mapping is shared (`s`) rather than private copy-on-write (`p`).
    public var isShared: Bool
    /// Offset in the backing file of the first mapped byte.
    public var offset: UInt64
    /// Major number of the backing file's device (0 for anonymous memory).
    public var deviceMajor: UInt32
    /// Minor number of the backing file's device.
    public var deviceMinor: UInt32
    /// Inode of the backing file (0 for anonymous memory).
    public var inode: UInt64
    /// The backing file, "" for anonymous memory, or a pseudo path such as "[stack]" or "[vdso]";
    /// without the kernel's " (deleted)" suffix (see `isDeleted`).
    public var path: String
    /// The kernel marked the backing file " (deleted)": unlinked or replaced on disk (also memfds).
    public var isDeleted: Bool

    /// Describes one mapping.
    public init(start: UInt64, end: UInt64, isReadable: Bool, isWritable: Bool, isExecutable: Bool,
                isShared: Bool, offset: UInt64, deviceMajor: UInt32, deviceMinor: UInt32, inode: UInt64,
                path: String, isDeleted: Bool) {
        self.start = start
        self.end = end
        self.isReadable = isReadable
        self.isWritable = isWritable
        self.isExecutable = isExecutable
        self.isShared = isShared
        self.offset = offset
        self.deviceMajor = deviceMajor
        self.deviceMinor = deviceMinor
        self.inode = inode
        self.path = path
        self.isDeleted = isDeleted
    }

    /// Backed by a real file: a nonzero inode and an absolute path (not "[heap]", not anonymous).
    public var isFileBacked: Bool { inode != 0 && path.utf8.first == UInt8(ascii: "/") }

    /// Length of the mapping in bytes.
    public var size: UInt64 { end - start }
}

/// Parses the text of /proc/PID/maps byte by byte (no `String.split`, no Foundation).
///
/// Line shape (fs/proc/task_mmu.c, show_vma_header_prefix):
/// `start-end perms offset major:minor inode [padding path]`, numbers in hex except the inode.
/// The path runs from the first non-blank after the inode to the end of the line, so it may hold
/// spaces; the kernel escapes a newline in a path as `\012`. A leading blank in a file name cannot
/// be told from the padding and is lost.
public enum ProcMapsParser {
    private static let deletedSuffix = Array(" (deleted)".utf8)

    /// Parses every line of `bytes`; `path` names the file in errors. Throws `malformedProcFile`.
    public static func parse(_ bytes: [UInt8], path: String) throws -> [MemoryMapping] {
        try bytes.withUnsafeBufferPointer { buffer in
            var mappings: [MemoryMapping] = []
            mappings.reserveCapacity(buffer.count / 80 + 1)
            var scanner = ByteScanner(buffer)
            var lineNumber = 0
            var lastPath: (bytes: Range<Int>, text: String)?
            while !scanner.isAtEnd {
                lineNumber += 1
                let lineEnd = scanner.next(UInt8(ascii: "\n"))
                guard let mapping = parseLine(&scanner, lineEnd: lineEnd, lastPath: &lastPath) else {
                    let from = lineStart(buffer, before: lineEnd)
                    let shown = scanner.text(from..<min(lineEnd, from + 160))
                    throw EngineError.malformedProcFile(path: path, reason: "line \(lineNumber) is not a mapping: \"\(shown)\"")
                }
                mappings.append(mapping)
                scanner.index = lineEnd + 1
            }
            return mappings
        }
    }

    /// The index where the line ending at `lineEnd` begins (for error messages only).
    private static func lineStart(_ buffer: UnsafeBufferPointer<UInt8>, before lineEnd: Int) -> Int {
        var i = lineEnd
        while i > 0, buffer[i - 1] != UInt8(ascii: "\n") { i -= 1 }
        return i
    }

    /// Parses one line from the cursor up to `lineEnd`; nil when a field is missing or bad.
    /// `lastPath` is the path of the last line that had one: an object's several mappings follow
    /// one another with the same path, which then shares that line's string instead of making
    /// another (an allocation and a UTF-8 check for most lines of every process's maps).
    private static func parseLine(_ s: inout ByteScanner, lineEnd: Int, lastPath: inout (bytes: Range<Int>, text: String)?) -> MemoryMapping? {
        guard let start = s.hex(), s.take(UInt8(ascii: "-")), let end = s.hex(), end >= start,
              s.take(UInt8(ascii: " ")) else { return nil }
        guard s.index + 4 < lineEnd else { return nil }
        let p = s.bytes
        let i = s.index
        guard p[i] == UInt8(ascii: "r") || p[i] == UInt8(ascii: "-"),
              p[i + 1] == UInt8(ascii: "w") || p[i + 1] == UInt8(ascii: "-"),
              p[i + 2] == UInt8(ascii: "x") || p[i + 2] == UInt8(ascii: "-"),
              p[i + 3] == UInt8(ascii: "s") || p[i + 3] == UInt8(ascii: "p"),
              p[i + 4] == UInt8(ascii: " ") else { return nil }
        s.index += 5
        guard let offset = s.hex(), s.take(UInt8(ascii: " ")),
              let major = s.hex(), major <= UInt32.max, s.take(UInt8(ascii: ":")),
              let minor = s.hex(), minor <= UInt32.max,
              s.take(UInt8(ascii: " ")),
              let inode = s.decimal(), s.index <= lineEnd else { return nil }
        // After the inode: end of line, or blanks then an optional path.
        guard s.index == lineEnd || p[s.index] == UInt8(ascii: " ") else { return nil }
        s.skipBlanks()
        guard s.index <= lineEnd else { return nil }
        var pathEnd = lineEnd
        var isDeleted = false
        let suffix = deletedSuffix
        if pathEnd - s.index > suffix.count {
            var matches = true
            for k in 0..<suffix.count where p[pathEnd - suffix.count + k] != suffix[k] {
                matches = false
                break
            }
            if matches {
                isDeleted = true
                pathEnd -= suffix.count
            }
        }
        var path = ""
        if s.index < pathEnd {
            let bytes = s.index..<pathEnd
            if let last = lastPath, last.bytes.count == bytes.count,
               memcmp(p.baseAddress! + last.bytes.lowerBound, p.baseAddress! + bytes.lowerBound, bytes.count) == 0 {
                path = last.text
            } else {
                path = s.text(bytes)
                lastPath = (bytes, path)
            }
        }
        return MemoryMapping(
            start: start, end: end,
            isReadable: p[i] == UInt8(ascii: "r"), isWritable: p[i + 1] == UInt8(ascii: "w"),
            isExecutable: p[i + 2] == UInt8(ascii: "x"), isShared: p[i + 3] == UInt8(ascii: "s"),
            offset: offset, deviceMajor: UInt32(major), deviceMinor: UInt32(minor), inode: inode,
            path: path, isDeleted: isDeleted)
    }
}
