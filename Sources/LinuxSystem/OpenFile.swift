import Glibc

/// An open file descriptor, closed when the value goes away, on every path.
package struct OpenFile: ~Copyable {
    /// The descriptor.
    package let raw: Int32
    /// The path it was opened as (named in errors).
    package let path: String

    /// Opens `path` with `flags` (O_CLOEXEC is always added). The corresponding C function is open(2).
    package init(path: String, flags: Int32, mode: mode_t = 0) throws(SystemError) {
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

    /// Reads up to `buffer.count` bytes at the current offset; 0 at end of file. read(2).
    package func read(into buffer: inout [UInt8]) throws(SystemError) -> Int {
        let capacity = buffer.count
        let descriptor = raw
        return try SystemCall.run("read", path) {
            buffer.withUnsafeMutableBytes { bytes in Glibc.read(descriptor, bytes.baseAddress!, capacity) }
        }
    }

    /// Reads until `buffer` is full or the file ends: fewer bytes than `buffer.count` only at end of
    /// file (a single read(2) may return less). read(2), repeated.
    package func read(filling buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        let descriptor = raw
        var done = 0
        while done < buffer.count {
            let n = try SystemCall.run("read", path) { Glibc.read(descriptor, buffer.baseAddress! + done, buffer.count - done) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads up to `count` bytes at `offset` into a new array (shorter at end of file). pread(2).
    package func read(at offset: UInt64, count: Int) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        let descriptor = raw
        while done < count {
            let n = try SystemCall.run("pread", path) {
                buffer.withUnsafeMutableBytes { bytes in
                    pread(descriptor, bytes.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                }
            }
            if n == 0 { break }
            done += n
        }
        buffer.removeLast(count - done)
        return buffer
    }

    /// Reads the rest of the file, refusing files larger than `limit` bytes (EFBIG).
    package func readAll(limit: Int) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        // Small first reads: most files read this way are /proc files of a few KiB, read for every
        // process on the host; the chunk grows for larger files.
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = try read(into: &chunk)
            if count == 0 { return result }
            guard result.count + count <= limit else {
                throw SystemError(call: "read", errno: EFBIG, subject: "\(path) (larger than \(limit) bytes)")
            }
            result.append(contentsOf: chunk[0..<count])
            if count == chunk.count && chunk.count < 1 << 20 {
                chunk = [UInt8](repeating: 0, count: chunk.count * 4)
            }
        }
    }

    /// Writes all of `bytes` at the current offset, however many calls the kernel needs. write(2).
    package func write<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(SystemError) {
        let array = Array(bytes)
        var done = 0
        let descriptor = raw
        while done < array.count {
            let count = try SystemCall.run("write", path) {
                array.withUnsafeBytes { bytes in Glibc.write(descriptor, bytes.baseAddress! + done, array.count - done) }
            }
            if count == 0 { throw SystemError(call: "write", errno: EIO, subject: path) }
            done += count
        }
    }

    /// Writes all of `bytes` at `offset` in as few calls as the kernel allows. pwrite(2).
    package func write(_ bytes: [UInt8], at offset: UInt64) throws(SystemError) {
        var done = 0
        let descriptor = raw
        while done < bytes.count {
            let n = try SystemCall.run("pwrite", path) {
                bytes.withUnsafeBytes { raw in
                    pwrite(descriptor, raw.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                }
            }
            if n == 0 { throw SystemError(call: "pwrite", errno: EIO, subject: path) }
            done += n
        }
    }

    /// The open file's status. fstat(2).
    package func status() throws(SystemError) -> stat {
        var info = stat()
        let descriptor = raw
        try SystemCall.run("fstat", path) { fstat(descriptor, &info) }
        return info
    }

    /// The status of `name` inside this open folder, a final symbolic link not followed (the
    /// link itself is described); `path` names it in errors. fstatat(2) with AT_SYMLINK_NOFOLLOW.
    package func linkStatus(of name: String, path: String) throws(SystemError) -> stat {
        var info = stat()
        let folder = raw
        try SystemCall.run("fstatat", path) { fstatat(folder, name, &info, AT_SYMLINK_NOFOLLOW) }
        return info
    }

    /// Sets the permission bits exactly (the mode given to open is filtered by the umask). fchmod(2).
    package func setMode(_ mode: mode_t) throws(SystemError) {
        let descriptor = raw
        try SystemCall.run("fchmod", path) { fchmod(descriptor, mode) }
    }

    /// Gives the file to `user` and `group` (which clears set-user-ID bits). fchown(2).
    package func setOwner(user: uid_t, group: gid_t) throws(SystemError) {
        let descriptor = raw
        try SystemCall.run("fchown", path) { fchown(descriptor, user, group) }
    }

    /// Flushes the file's data and metadata to disk. fsync(2).
    package func sync() throws(SystemError) {
        let descriptor = raw
        try SystemCall.run("fsync", path) { fsync(descriptor) }
    }

    deinit { Glibc.close(raw) }
}
