import Glibc

/// Whole-file and path operations over `OpenFile` and `SystemCall`.
package enum Files {
    /// Reads a whole file (e.g. a /proc file whose size stat cannot tell), at most `limit` bytes.
    package static func read(_ path: String, limit: Int = 64 << 20) throws(SystemError) -> [UInt8] {
        let file = try OpenFile(path: path, flags: O_RDONLY)
        return try file.readAll(limit: limit)
    }

    /// Reads a `/proc` file the kernel prints whole at each read (a process's stat, status or
    /// cgroup; `OpenFile.readAll(limit:oneRecord:)`), refusing more than `limit` bytes: one read
    /// fewer than `read(_:limit:)`. Not for files printed a record at a time, such as maps.
    package static func readRecord(_ path: String, limit: Int) throws(SystemError) -> [UInt8] {
        let file = try OpenFile(path: path, flags: O_RDONLY)
        return try file.readAll(limit: limit, oneRecord: true)
    }

    /// Reads the whole file at `path`, refusing more than `limit` bytes; nil when it does not exist.
    package static func readIfPresent(_ path: String, limit: Int = 64 << 20) throws(SystemError) -> [UInt8]? {
        let file: OpenFile
        do throws(SystemError) {
            file = try OpenFile(path: path, flags: O_RDONLY)
        } catch where error.errno == ENOENT {
            return nil
        }
        return try file.readAll(limit: limit)
    }

    /// The status of `path`, following symbolic links. stat(2).
    package static func status(_ path: String) throws(SystemError) -> stat {
        var info = stat()
        try SystemCall.run("stat", path) { stat(path, &info) }
        return info
    }

    /// The status of `path` itself (a final symbolic link is not followed). lstat(2).
    package static func linkStatus(_ path: String) throws(SystemError) -> stat {
        var info = stat()
        try SystemCall.run("lstat", path) { lstat(path, &info) }
        return info
    }

    /// The status of `path` itself, or nil when nothing is there. lstat(2).
    package static func linkStatusIfPresent(_ path: String) throws(SystemError) -> stat? {
        do throws(SystemError) {
            return try linkStatus(path)
        } catch where error.errno == ENOENT {
            return nil
        }
    }

    /// The target of a symbolic link such as /proc/PID/exe. readlink(2).
    package static func readLink(_ path: String) throws(SystemError) -> String {
        try linkTarget("readlink", path) { Glibc.readlink(path, $0, $1) }
    }

    /// The target of the symbolic link `name` inside the open folder `directory` (`path` names it
    /// in errors). readlinkat(2).
    package static func readLink(_ name: String, in directory: borrowing OpenFile, path: String) throws(SystemError) -> String {
        let folder = directory.raw
        return try linkTarget("readlinkat", path) { readlinkat(folder, name, $0, $1) }
    }

    /// The text `read` (readlink or readlinkat into a buffer of PATH_MAX) gives.
    private static func linkTarget(_ call: StaticString, _ path: String,
                                   _ read: (UnsafeMutablePointer<CChar>, Int) -> Int) throws(SystemError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let capacity = buffer.count - 1
        let n = try buffer.withUnsafeMutableBufferPointer { pointer throws(SystemError) in
            try SystemCall.run(call, path) { read(pointer.baseAddress!, capacity) }
        }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The canonical absolute path of `path` (symbolic links resolved). realpath(3).
    package static func realPath(_ path: String) throws(SystemError) -> String {
        guard let resolved = realpath(path, nil) else {
            throw SystemError(call: "realpath", errno: Glibc.errno, subject: path)
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The names in a directory, without "." and "..". opendir(3)/readdir(3).
    package static func list(_ path: String) throws(SystemError) -> [String] {
        guard let directory = opendir(path) else {
            throw SystemError(call: "opendir", errno: Glibc.errno, subject: path)
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

    /// Renames `source` over `destination` (atomic within one file system). rename(2).
    package static func rename(_ source: String, to destination: String) throws(SystemError) {
        try SystemCall.run("rename", "\(source) to \(destination)") { Glibc.rename(source, destination) }
    }

    /// Removes the file at `path`. unlink(2).
    package static func remove(_ path: String) throws(SystemError) {
        try SystemCall.run("unlink", path) { unlink(path) }
    }

    /// Removes the file at `path`; a missing file is not an error. unlink(2).
    package static func removeIfPresent(_ path: String) throws(SystemError) {
        do throws(SystemError) {
            try remove(path)
        } catch where error.errno == ENOENT {
            return
        }
    }

    /// Sets the permission bits of `path` exactly. chmod(2).
    package static func setMode(_ path: String, _ mode: mode_t) throws(SystemError) {
        try SystemCall.run("chmod", path) { chmod(path, mode) }
    }

    /// Creates `path` and any missing parents with `mode` (filtered by the umask); an existing
    /// directory is fine, anything else in the way is ENOTDIR. mkdir(2).
    package static func makeDirectories(_ path: String, mode: mode_t) throws(SystemError) {
        if let info = try linkStatusIfPresent(path) {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw SystemError(call: "mkdir", errno: ENOTDIR, subject: path)
            }
            return
        }
        let parent = directoryName(path)
        if parent != path { try makeDirectories(parent, mode: mode) }
        do throws(SystemError) {
            try SystemCall.run("mkdir", path) { mkdir(path, mode) }
        } catch where error.errno == EEXIST {
            // Another writer may have created it between our lstat and mkdir.
            return
        }
    }

    /// Creates the one directory `path` with `mode` (filtered by the umask) unless something is
    /// already there, which is left as it is (the caller checks what it is); the parent must exist.
    /// mkdir(2), EEXIST ignored.
    package static func makeDirectoryIfAbsent(_ path: String, mode: mode_t) throws(SystemError) {
        do throws(SystemError) {
            try SystemCall.run("mkdir", path) { mkdir(path, mode) }
        } catch where error.errno == EEXIST {
            return
        }
    }

    /// Flushes a directory's entries (a rename in it) to disk. open(2) + fsync(2).
    package static func syncDirectory(_ path: String) throws(SystemError) {
        let directory = try OpenFile(path: path, flags: O_RDONLY | O_DIRECTORY)
        try directory.sync()
    }

    /// The directory part of an absolute or relative path ("/" for "/x", "." for "x").
    package static func directoryName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.last == "/" { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// The last component of a path.
    package static func baseName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.last == "/" { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// The prefix every temporary file we create beside `path` starts with, so leftovers of a crash
    /// can be recognised and removed. At most `temporaryNameStem` bytes of the name are kept: with
    /// the pid and random suffix the temporary name stays within NAME_MAX (255) whatever the
    /// length of `path`'s own name.
    package static func temporaryPrefix(for path: String) -> String {
        var stem = ""
        for scalar in baseName(path).unicodeScalars {
            guard stem.utf8.count + String(scalar).utf8.count <= temporaryNameStem else { break }
            stem.unicodeScalars.append(scalar)
        }
        return "." + stem + ".tmp-"
    }

    /// How many bytes of a file's name its temporary names keep: "." + stem + ".tmp-" + pid (up
    /// to 10 digits) + "-" + random (up to 10 digits) is at most 227 bytes.
    package static let temporaryNameStem = 200

    /// Writes a file atomically: `write` fills a new file beside `path` (same directory, so the
    /// rename cannot cross file systems), which is given `owner` and exactly `mode`, fsynced,
    /// renamed over `path`, and the directory is fsynced. Readers see the old file or the new one,
    /// never a part. On any error the temporary file is removed and `path` is untouched.
    package static func writeAtomically(
        _ path: String, mode: mode_t, owner: (user: uid_t, group: gid_t)? = nil,
        _ write: (borrowing OpenFile) throws(SystemError) -> Void
    ) throws(SystemError) {
        let directory = directoryName(path)
        let temporary = directory + "/" + temporaryPrefix(for: path) + "\(getpid())-\(UInt32.random(in: 0 ... .max))"
        do throws(SystemError) {
            let file = try OpenFile(path: temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode)
            try write(file)
            if let owner { try file.setOwner(user: owner.user, group: owner.group) }
            // After fchown, which clears set-user-ID bits; and the mode given to open is filtered by the umask.
            try file.setMode(mode)
            try file.sync()
            try rename(temporary, to: path)
        } catch {
            try? removeIfPresent(temporary)
            throw error
        }
        try syncDirectory(directory)
    }

    /// Writes `bytes` to `path` atomically (see `writeAtomically(_:mode:owner:_:)`).
    package static func writeAtomically(_ path: String, bytes: [UInt8], mode: mode_t) throws(SystemError) {
        try writeAtomically(path, mode: mode) { (file: borrowing OpenFile) throws(SystemError) in
            try file.write(bytes)
        }
    }

    /// Writes a copy of the regular file at `source` to `path` atomically, streaming it in chunks.
    /// `source` itself is never a symbolic link followed, a FIFO waited on or a device read.
    package static func copyAtomically(
        from source: String, to path: String, mode: mode_t, owner: (user: uid_t, group: gid_t)? = nil
    ) throws(SystemError) {
        let input = try openRegularFile(source)
        try writeAtomically(path, mode: mode, owner: owner) { (file: borrowing OpenFile) throws(SystemError) in
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let count = try input.read(into: &chunk)
                if count == 0 { break }
                try file.write(chunk[0..<count])
            }
        }
    }

    /// Opens `path` for reading only if it is a regular file: a symbolic link is not followed
    /// (ELOOP), a FIFO is not waited on, and anything that is not a regular file is EINVAL.
    package static func openRegularFile(_ path: String) throws(SystemError) -> OpenFile {
        let file = try OpenFile(path: path, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        guard try file.status().st_mode & S_IFMT == S_IFREG else {
            throw SystemError(call: "open", errno: EINVAL, subject: "\(path) (not a regular file)")
        }
        return file
    }

    /// Creates a new file at `path` holding `bytes`, of exactly `mode`, and flushes it to disk;
    /// an existing file is never replaced (EEXIST). open(2) with O_EXCL.
    package static func createExclusively(_ path: String, bytes: [UInt8], mode: mode_t) throws(SystemError) {
        let file = try OpenFile(path: path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        try file.setMode(mode)
        try file.write(bytes)
        try file.sync()
    }
}
