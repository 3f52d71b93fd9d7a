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
        try Self.fill(buffer, descriptor: raw, path: path)
    }

    /// Reads into `buffer` until it is full or the file ends, from the current offset, or with
    /// pread(2) from `offset`; returns how many bytes. The one read loop of this file.
    /// With `shortReadEnds`, a read that returns less than it asked for ends the loop too (see
    /// `readAll(limit:oneRecord:)`).
    private static func fill(_ buffer: UnsafeMutableRawBufferPointer, descriptor: Int32, path: String,
                             at offset: UInt64? = nil, shortReadEnds: Bool = false) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let start = done
            let n = try SystemCall.run(offset == nil ? "read" : "pread", path) {
                if let offset {
                    pread(descriptor, buffer.baseAddress! + start, buffer.count - start, off_t(offset) + off_t(start))
                } else {
                    Glibc.read(descriptor, buffer.baseAddress! + start, buffer.count - start)
                }
            }
            if n == 0 { break }
            done += n
            if shortReadEnds, done < buffer.count { break }
        }
        return done
    }

    /// Reads up to `buffer.count` bytes at `offset` into `buffer`; returns how many (fewer at end
    /// of file, or, with `endingAtAShortRead`, at the first short read). pread(2).
    package func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer,
                      endingAtAShortRead: Bool = false) throws(SystemError) -> Int {
        try Self.fill(buffer, descriptor: raw, path: path, at: offset, shortReadEnds: endingAtAShortRead)
    }

    /// Reads up to `count` bytes at `offset` into a new array (shorter at end of file). pread(2).
    /// Read straight into the array, not zero-filled first: every entry, word and read-back of
    /// another process's memory comes this way. With `endingAtAShortRead`, the bytes of the first
    /// short read are all there is (for /proc/PID/mem: an unmapped page ends the read).
    package func read(at offset: UInt64, count: Int, endingAtAShortRead: Bool = false) throws(SystemError) -> [UInt8] {
        let descriptor = raw
        let path = path
        var failure: SystemError?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(SystemError) {
                initialized = try Self.fill(UnsafeMutableRawBufferPointer(buffer), descriptor: descriptor, path: path, at: offset,
                                            shortReadEnds: endingAtAShortRead)
            } catch {
                initialized = 0
                failure = error
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Reads the rest of the file, refusing files larger than `limit` bytes (EFBIG).
    ///
    /// The bytes are read straight into the array returned, with no zero-filled chunk in between:
    /// a regular file into one buffer of its size (one byte more tells a file that grew since),
    /// so a 2 MiB library touches 2 MiB of fresh memory rather than the 5 or so that growing by
    /// appending did (on a VM that backs fresh pages lazily, about 10-25 µs a page: run 15 in
    /// docs/PERFORMANCE.md). `/proc` files report no size, so a file opened under `/proc/` is not
    /// even asked (one system call fewer for each of the several a process is read through on
    /// every scan): most are a few KiB, so the buffer starts at 16 KiB and grows fourfold.
    ///
    /// With `oneRecord`, the file is one the kernel prints whole for every read (a `/proc` file
    /// made by one `single_open` show: a process's stat, status, cgroup): a read that does not
    /// fill the buffer returned all of it, so the read that would only say "end of file" is left
    /// out (one system call of the several a scan makes for each process).
    package func readAll(limit: Int, oneRecord: Bool = false) throws(SystemError) -> [UInt8] {
        var info = stat()
        let size = !path.hasPrefix("/proc/") && fstat(raw, &info) == 0 && info.st_mode & S_IFMT == S_IFREG ? Int(info.st_size) : 0
        let path = path
        // Made only when thrown: every /proc read of every process comes through here.
        func tooLarge() -> SystemError { SystemError(call: "read", errno: EFBIG, subject: "\(path) (larger than \(limit) bytes)") }
        // Known too large already: refused without reading (and without a buffer of `limit` bytes).
        guard size <= limit else { throw tooLarge() }
        var capacity = (size > 0 ? size : min(16 * 1024, limit)) + 1
        var result: [UInt8] = []
        let descriptor = raw
        while true {
            let kept = result
            var failure: SystemError?
            result = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
                let bytes = UnsafeMutableRawBufferPointer(buffer)
                kept.withUnsafeBytes { bytes.copyMemory(from: $0) }
                count = kept.count
                do throws(SystemError) {
                    count += try Self.fill(UnsafeMutableRawBufferPointer(rebasing: bytes[kept.count...]), descriptor: descriptor,
                                           path: path, shortReadEnds: oneRecord)
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
            guard result.count <= limit else { throw tooLarge() }
            // Short of the buffer: the file ended.
            if result.count < capacity { return result }
            capacity = min(capacity * 4, limit + 1)
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
