import Glibc

/// The one choke point through which AgentCore makes file system calls: `-1`/errno becomes
/// `AgentCoreError.systemCall` naming the call and its file, and `EINTR` is retried.
enum FileSystem {
    /// Runs `body` until it does not fail with `EINTR`; a result of -1 becomes a typed error.
    @discardableResult
    static func call<Result: BinaryInteger>(
        _ name: StaticString, _ subject: @autoclosure () -> String, _ body: () -> Result
    ) throws(AgentCoreError) -> Result {
        while true {
            let result = body()
            if result != -1 { return result }
            let number = Glibc.errno
            if number == EINTR { continue }
            throw .systemCall(name: "\(name)", errno: number, subject: subject())
        }
    }

    /// The C library's sentence for `number`, with its symbolic value for searching. strerror(3).
    static func errorText(_ number: Int32) -> String {
        "\(String(cString: strerror(number))) (errno \(number))"
    }

    /// The status of `path` without following a final symbolic link, or nil when nothing is there.
    /// lstat(2).
    static func status(_ path: String) throws(AgentCoreError) -> stat? {
        var info = stat()
        do {
            try call("lstat", path) { lstat(path, &info) }
        } catch {
            if case .systemCall(_, ENOENT, _) = error { return nil }
            throw error
        }
        return info
    }

    /// Whether anything (file, directory, link) exists at `path`.
    static func exists(_ path: String) throws(AgentCoreError) -> Bool { try status(path) != nil }

    /// Reads the whole file at `path`, refusing more than `limit` bytes; nil when it does not exist.
    static func readIfPresent(_ path: String, limit: Int = 64 << 20) throws(AgentCoreError) -> [UInt8]? {
        let file: OpenFile
        do {
            file = try OpenFile(path: path, flags: O_RDONLY)
        } catch {
            if case .systemCall(_, ENOENT, _) = error { return nil }
            throw error
        }
        return try file.readAll(limit: limit)
    }

    /// Renames `source` over `destination` (atomic within one file system). rename(2).
    static func rename(_ source: String, to destination: String) throws(AgentCoreError) {
        try call("rename", "\(source) to \(destination)") { Glibc.rename(source, destination) }
    }

    /// Removes the file at `path`; a missing file is not an error. unlink(2).
    static func removeFile(_ path: String) throws(AgentCoreError) {
        do {
            try call("unlink", path) { unlink(path) }
        } catch {
            if case .systemCall(_, ENOENT, _) = error { return }
            throw error
        }
    }

    /// Creates `path` and any missing parents with `mode`; an existing directory is fine. mkdir(2).
    static func makeDirectories(_ path: String, mode: mode_t) throws(AgentCoreError) {
        if let info = try status(path) {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw .systemCall(name: "mkdir", errno: ENOTDIR, subject: path)
            }
            return
        }
        let parent = directoryName(path)
        if parent != path { try makeDirectories(parent, mode: mode) }
        do {
            try call("mkdir", path) { mkdir(path, mode) }
        } catch {
            // Another writer may have created it between our lstat and mkdir.
            if case .systemCall(_, EEXIST, _) = error { return }
            throw error
        }
    }

    /// Flushes a directory's entries (a rename in it) to disk. open(2) + fsync(2).
    static func syncDirectory(_ path: String) throws(AgentCoreError) {
        let directory = try OpenFile(path: path, flags: O_RDONLY | O_DIRECTORY)
        try directory.sync()
    }

    /// The names in a directory, without "." and "..". opendir(3)/readdir(3).
    static func list(_ path: String) throws(AgentCoreError) -> [String] {
        guard let directory = opendir(path) else {
            throw .systemCall(name: "opendir", errno: Glibc.errno, subject: path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The directory part of an absolute or relative path ("/" for "/x", "." for "x").
    static func directoryName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.last == "/" { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// The last component of a path.
    static func baseName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.last == "/" { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// The prefix every temporary file we create beside `path` starts with, so leftovers of a crash
    /// can be recognised and removed. At most `temporaryNameStem` bytes of the name are kept: with
    /// the pid and random suffix the temporary name stays within NAME_MAX (255) whatever the
    /// length of `path`'s own name.
    static func temporaryPrefix(for path: String) -> String {
        var stem = ""
        for scalar in baseName(path).unicodeScalars {
            guard stem.utf8.count + String(scalar).utf8.count <= temporaryNameStem else { break }
            stem.unicodeScalars.append(scalar)
        }
        return "." + stem + ".tmp-"
    }

    /// How many bytes of a file's name its temporary names keep: "." + stem + ".tmp-" + pid (up
    /// to 10 digits) + "-" + random (up to 10 digits) is at most 227 bytes.
    static let temporaryNameStem = 200

    /// The target of the symbolic link at `path`. readlink(2).
    static func readLink(_ path: String) throws(AgentCoreError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let capacity = buffer.count - 1
        let count = try call("readlink", path) { Glibc.readlink(path, &buffer, capacity) }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes a file atomically: `write` fills a new file beside `path` (same directory, so the
    /// rename cannot cross file systems), which is fsynced, given `mode`, renamed over `path`, and
    /// the directory is fsynced. Readers see the old file or the new one, never a part. On any error
    /// the temporary file is removed and `path` is untouched.
    static func writeAtomically(
        _ path: String, mode: mode_t, owner: (user: uid_t, group: gid_t)? = nil,
        _ write: (borrowing OpenFile) throws(AgentCoreError) -> Void
    ) throws(AgentCoreError) {
        let directory = directoryName(path)
        let temporary = directory + "/" + temporaryPrefix(for: path) + "\(getpid())-\(UInt32.random(in: 0 ... .max))"
        do {
            let file = try OpenFile(path: temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode)
            try write(file)
            // The mode given to open is filtered by the umask; set it exactly.
            if let owner {
                try call("fchown", temporary) { fchown(file.raw, owner.user, owner.group) }
            }
            // After fchown, which clears set-user-ID bits.
            try call("fchmod", temporary) { fchmod(file.raw, mode) }
            try file.sync()
            try rename(temporary, to: path)
        } catch {
            try? removeFile(temporary)
            throw error
        }
        try syncDirectory(directory)
    }

    /// Writes `bytes` to `path` atomically (see `writeAtomically(_:mode:_:)`).
    static func writeAtomically(_ path: String, bytes: [UInt8], mode: mode_t) throws(AgentCoreError) {
        try writeAtomically(path, mode: mode) { (file: borrowing OpenFile) throws(AgentCoreError) in
            try file.write(bytes)
        }
    }

    /// Writes a copy of the regular file at `source` to `path` atomically, streaming it in chunks.
    /// `source` itself is never a symbolic link followed, a FIFO waited on or a device read.
    static func copyAtomically(
        from source: String, to path: String, mode: mode_t, owner: (user: uid_t, group: gid_t)? = nil
    ) throws(AgentCoreError) {
        let input = try OpenFile(path: source, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        guard try input.status().st_mode & S_IFMT == S_IFREG else {
            throw .systemCall(name: "copy", errno: EINVAL, subject: "\(source) (not a regular file)")
        }
        try writeAtomically(path, mode: mode, owner: owner) { (file: borrowing OpenFile) throws(AgentCoreError) in
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let count = try input.read(into: &chunk)
                if count == 0 { break }
                try file.write(chunk[0..<count])
            }
        }
    }
}

/// A file descriptor AgentCore owns; it is closed when the value goes away, on every path.
struct OpenFile: ~Copyable {
    let raw: Int32
    let path: String

    /// Opens `path` with `flags` (O_CLOEXEC always added). open(2).
    init(path: String, flags: Int32, mode: mode_t = 0) throws(AgentCoreError) {
        self.path = path
        self.raw = try FileSystem.call("open", path) { open(path, flags | O_CLOEXEC, mode) }
    }

    /// Reads up to `buffer.count` bytes at the current offset; 0 at end of file. read(2).
    func read(into buffer: inout [UInt8]) throws(AgentCoreError) -> Int {
        let capacity = buffer.count
        let descriptor = raw
        return try FileSystem.call("read", path) {
            buffer.withUnsafeMutableBytes { bytes in Glibc.read(descriptor, bytes.baseAddress!, capacity) }
        }
    }

    /// Reads the rest of the file, refusing more than `limit` bytes.
    func readAll(limit: Int) throws(AgentCoreError) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = try read(into: &chunk)
            if count == 0 { return result }
            guard result.count + count <= limit else {
                throw .systemCall(name: "read", errno: EFBIG, subject: "\(path) (larger than \(limit) bytes)")
            }
            result.append(contentsOf: chunk[0..<count])
        }
    }

    /// Writes all of `bytes`, however many calls the kernel needs. write(2).
    func write<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(AgentCoreError) {
        let array = Array(bytes)
        var done = 0
        let descriptor = raw
        while done < array.count {
            let count = try FileSystem.call("write", path) {
                array.withUnsafeBytes { raw in Glibc.write(descriptor, raw.baseAddress! + done, array.count - done) }
            }
            if count == 0 { throw .systemCall(name: "write", errno: EIO, subject: path) }
            done += count
        }
    }

    /// The open file's status. fstat(2).
    func status() throws(AgentCoreError) -> stat {
        var info = stat()
        let descriptor = raw
        try FileSystem.call("fstat", path) { fstat(descriptor, &info) }
        return info
    }

    /// Flushes the file's data and metadata to disk. fsync(2).
    func sync() throws(AgentCoreError) {
        let descriptor = raw
        try FileSystem.call("fsync", path) { fsync(descriptor) }
    }

    deinit { Glibc.close(raw) }
}
