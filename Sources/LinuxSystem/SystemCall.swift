import Glibc

/// The one choke point through which the package makes system calls: it turns `-1`/errno into a
/// `SystemError` naming the call and its subject, and retries `EINTR`.
package enum SystemCall {
    /// Runs `body` until it does not fail with `EINTR`; a result of -1 becomes a typed error.
    @discardableResult
    package static func run<Result: BinaryInteger>(
        _ name: StaticString, _ subject: @autoclosure () -> String, _ body: () -> Result
    ) throws(SystemError) -> Result {
        while true {
            let result = body()
            if result != -1 { return result }
            let number = Glibc.errno
            if number == EINTR { continue }
            throw SystemError(call: "\(name)", errno: number, subject: subject())
        }
    }
}

/// An open file descriptor; `close()` must be called (see `withFile`).
package struct OpenFile: ~Copyable {
    /// The descriptor.
    package let raw: Int32
    /// The path it was opened as (named in errors).
    package let path: String

    /// Opens `path` with `flags` (O_CLOEXEC is always added). The corresponding C function is open(2).
    package init(path: String, flags: Int32, mode: mode_t = 0) throws {
        self.path = path
        self.raw = try SystemCall.run("open", path) { open(path, flags | O_CLOEXEC, mode) }
    }

    /// Opens `name` inside the open folder `directory` (O_CLOEXEC always added); `path` names it
    /// in errors. The corresponding C function is openat(2).
    package init(in directory: borrowing OpenFile, name: String, path: String, flags: Int32) throws(SystemError) {
        let folder = directory.raw
        self.path = path
        self.raw = try SystemCall.run("openat", path) { openat(folder, name, flags | O_CLOEXEC) }
    }

    /// Reads up to `count` bytes at `offset` into a new array (shorter at end of file). pread(2).
    package func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = try buffer.withUnsafeMutableBytes { raw in
                try SystemCall.run("pread", path) {
                    pread(self.raw, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                }
            }
            if n == 0 { break }
            done += n
        }
        buffer.removeLast(count - done)
        return buffer
    }

    /// Writes all of `bytes` at `offset` in as few calls as the kernel allows. pwrite(2).
    package func write(_ bytes: [UInt8], at offset: UInt64) throws {
        var done = 0
        while done < bytes.count {
            let n = try bytes.withUnsafeBytes { raw in
                try SystemCall.run("pwrite", path) {
                    pwrite(self.raw, raw.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                }
            }
            if n == 0 {
                throw SystemError(call: "pwrite", errno: EIO, subject: path)
            }
            done += n
        }
    }

    /// Reads the whole file from the start, refusing files larger than `limit` bytes.
    package func readAll(limit: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        // Small first reads: most files read this way are /proc files of a few KiB, read for every
        // process on the host; the chunk grows for larger files.
        var chunkSize = 16 * 1024
        while true {
            let chunk = try [UInt8](unsafeUninitializedCapacity: chunkSize) { buffer, count in
                count = try SystemCall.run("read", path) { Glibc.read(self.raw, buffer.baseAddress!, chunkSize) }
            }
            if chunk.isEmpty { return result }
            if result.count + chunk.count > limit {
                throw SystemError(call: "read", errno: EFBIG, subject: "\(path) (larger than \(limit) bytes)")
            }
            result.append(contentsOf: chunk)
            if chunk.count == chunkSize && chunkSize < 1 << 20 { chunkSize *= 4 }
        }
    }

    /// The file's status. fstat(2).
    package func status() throws -> stat {
        var info = stat()
        try SystemCall.run("fstat", path) { fstat(raw, &info) }
        return info
    }

    deinit { Glibc.close(raw) }
}

/// Whole-file helpers over `OpenFile`.
package enum Files {
    /// Reads a whole file (e.g. a /proc file whose size stat cannot tell), at most `limit` bytes.
    package static func read(_ path: String, limit: Int = 64 << 20) throws -> [UInt8] {
        let file = try OpenFile(path: path, flags: O_RDONLY)
        return try file.readAll(limit: limit)
    }

    /// The status of `path`, following symbolic links. stat(2).
    package static func status(_ path: String) throws -> stat {
        var info = stat()
        try SystemCall.run("stat", path) { stat(path, &info) }
        return info
    }

    /// The target of a symbolic link such as /proc/PID/exe. readlink(2).
    package static func readLink(_ path: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try SystemCall.run("readlink", path) { readlink(path, &buffer, buffer.count - 1) }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The names in a directory, without "." and "..". opendir(3)/readdir(3).
    package static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw SystemError(call: "opendir", errno: Glibc.errno, subject: path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
