import Glibc
import LinuxSystem

/// Another process's memory through /proc/PID/mem. The kernel lets a tracer (or root) write there
/// even into read-only text, which `process_vm_writev` refuses with EFAULT.
struct ProcessMemory: ~Copyable {
    private let file: OpenFile
    /// The process whose memory this is.
    let pid: ProcessID

    /// Opens /proc/PID/mem for reading and writing.
    init(pid: ProcessID) throws {
        self.pid = pid
        self.file = try OpenFile(path: "/proc/\(pid)/mem", flags: O_RDWR)
    }

    /// The memory of the process `directory` was opened for (its mem file opened through it).
    init(_ directory: ProcessDirectory) throws {
        pid = directory.pid
        file = try directory.open("mem", flags: O_RDWR)
    }

    /// Reads `count` bytes at `address`; fails if any of them is unmapped.
    func read(at address: UInt64, count: Int) throws -> [UInt8] {
        let bytes = try file.read(at: address, count: count)
        guard bytes.count == count else {
            throw EngineError.systemCall(name: "pread", errno: EIO,
                                         subject: "/proc/\(pid)/mem at 0x\(String(address, radix: 16))")
        }
        return bytes
    }

    /// Reads up to `count` bytes at `address`: fewer when an unmapped page ends them (the kernel
    /// stops there), none when the first is unmapped.
    func readAvailable(at address: UInt64, count: Int) -> [UInt8] {
        (try? file.read(at: address, count: count, endingAtAShortRead: true)) ?? []
    }

    /// `readAvailable(at:count:)` into `buffer` (up to its size), for reads made over and over:
    /// returns how many bytes were read.
    func readAvailable(at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        (try? file.read(at: address, into: buffer, endingAtAShortRead: true)) ?? 0
    }

    /// Writes `bytes` at `address` in one pwrite (the kernel copies page by page), then reads them back.
    func write(_ bytes: [UInt8], at address: UInt64, verify: Bool = true) throws {
        try file.write(bytes, at: address)
        if verify {
            let back = try read(at: address, count: bytes.count)
            // memcmp: the generic element-by-element == showed in profiles for page-sized writes.
            let same = back.withUnsafeBytes { read in
                bytes.withUnsafeBytes { wrote in read.count == wrote.count && (read.isEmpty || memcmp(read.baseAddress!, wrote.baseAddress!, read.count) == 0) }
            }
            guard same else {
                throw EngineError.systemCall(name: "pwrite", errno: EIO,
                                             subject: "/proc/\(pid)/mem at 0x\(String(address, radix: 16)) (read-back differs)")
            }
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends `value` as little-endian bytes.
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
