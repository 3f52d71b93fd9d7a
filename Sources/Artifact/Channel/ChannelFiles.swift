import Crypto
import Glibc
import LinuxSystem

/// File-system work of the verifier: resolving paths inside the channel, the StrictModes-like
/// permission check, bounded reads and streaming SHA-256. Every system call goes through the
/// system layer's verbs (`Files`, `OpenFile`).
enum ChannelFiles {
    /// Reads and hashes in chunks of this size.
    static let chunkSize = 1 << 20

    /// The canonical absolute path of `path` (symbolic links resolved). realpath(3).
    static func realPath(_ path: String) throws(SystemError) -> String { try Files.realPath(path) }

    /// The real path of `relative` inside the channel whose real path is `root`; refuses a path
    /// that a symbolic link takes outside `root`.
    static func resolve(_ relative: String, inChannel root: String) throws(ChannelRefusal) -> String {
        let display = root + "/" + relative
        let resolved: String
        do {
            resolved = try realPath(display)
        } catch {
            throw .unreadableFile(path: display, reason: reasonText(error))
        }
        guard resolved.hasPrefix(root + "/") else { throw .pathEscapesChannel(path: display, resolved: resolved) }
        return resolved
    }

    /// The reason a refusal gives for a failed system call: the system layer's one sentence form
    /// ("open failed for PATH: ENOENT (No such file or directory)"); any other error as it describes itself.
    static func reasonText(_ error: any Error) -> String {
        "\(error)"
    }

    /// The status of `path` itself (a symbolic link is not followed). lstat(2).
    static func linkStatus(_ path: String) throws(SystemError) -> stat { try Files.linkStatus(path) }

    // MARK: Permissions

    /// Refuses `root` or anything below it that a user other than root (or the effective user, for
    /// a publisher checking their own channel) could write: owned by another user, or group- or
    /// world-writable. Symbolic links are not followed (their own mode means nothing); their
    /// targets are checked by `resolve`. Like sshd's StrictModes, directories above are not checked.
    static func checkPermissions(root: String) throws(ChannelRefusal) {
        let me = geteuid()
        var pending = [root]
        var visited = 0
        while let path = pending.popLast() {
            visited += 1
            guard visited <= 1_000_000 else { throw .unreadableFile(path: root, reason: "more than a million entries") }
            let info: stat
            do { info = try linkStatus(path) } catch { throw .unreadableFile(path: path, reason: reasonText(error)) }
            let type = info.st_mode & S_IFMT
            if type == S_IFLNK { continue }
            if info.st_uid != 0 && info.st_uid != me {
                throw .writableByOthers(path: path, reason: "owned by uid \(info.st_uid)")
            }
            if info.st_mode & (S_IWGRP | S_IWOTH) != 0 {
                let octal = String(info.st_mode & 0o7777, radix: 8)
                throw .writableByOthers(path: path, reason: "mode \(octal) lets the group or others write")
            }
            if type == S_IFDIR {
                let names: [String]
                do { names = try Files.list(path) } catch { throw .unreadableFile(path: path, reason: reasonText(error)) }
                pending.append(contentsOf: names.sorted().reversed().map { path + "/" + $0 })
            }
        }
    }

    // MARK: Reading

    /// Reads a whole regular file of at most `limit` bytes; `tooLarge` is thrown past that.
    static func readSmallFile(_ path: String, limit: Int, tooLarge: ChannelRefusal) throws(ChannelRefusal) -> [UInt8] {
        do {
            let file = try OpenFile(path: path, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            let info = try file.status()
            guard info.st_mode & S_IFMT == S_IFREG else { throw ChannelRefusal.notRegularFile(path: path) }
            guard info.st_size <= limit else { throw tooLarge }
            return try file.readAll(limit: limit)
        } catch let refusal as ChannelRefusal {
            throw refusal
        } catch let error as SystemError where error.errno == EFBIG {
            throw tooLarge
        } catch {
            throw .unreadableFile(path: path, reason: reasonText(error))
        }
    }

    // MARK: Trusted keys

    /// The largest key file read: a key line is about 60 bytes, comments included a few hundred.
    static let maxTrustedKeyBytes = 4096

    /// The files of the trusted-keys folder (names starting with '.' skipped), each read whole.
    ///
    /// The folder and every key must be owned by root (or the effective user, for a publisher
    /// checking their own channel) and writable by no one else, and every key a regular file of at
    /// most `maxTrustedKeyBytes`: anything else (FIFO, device, symbolic link, folder, a huge file) is
    /// refused with its path before it is opened, and opened with O_NONBLOCK|O_NOFOLLOW so that a
    /// file swapped in between the check and the open can neither block nor lead elsewhere.
    static func readTrustedKeyFiles(in directory: String) throws(ChannelRefusal) -> [(path: String, bytes: [UInt8])] {
        let folder: OpenFile
        do {
            folder = try OpenFile(path: directory, flags: O_RDONLY | O_DIRECTORY | O_NONBLOCK)
        } catch {
            throw .unreadableFile(path: directory, reason: reasonText(error))
        }
        let folderInfo: stat
        do { folderInfo = try folder.status() } catch { throw .unreadableFile(path: directory, reason: reasonText(error)) }
        if let problem = ownershipProblem(folderInfo) { throw .unsafeTrustedKey(path: directory, reason: problem) }
        let names: [String]
        do { names = try Files.list(directory) } catch { throw .unreadableFile(path: directory, reason: reasonText(error)) }
        var files: [(path: String, bytes: [UInt8])] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = directory + "/" + name
            let seen: stat
            do {
                seen = try folder.linkStatus(of: name, path: path)
            } catch {
                throw .unreadableFile(path: path, reason: reasonText(error))
            }
            try checkTrustedKey(seen, path: path)
            let bytes: [UInt8]
            do {
                let key = try OpenFile(in: folder, name: name, path: path, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
                let info = try key.status()
                guard info.st_dev == seen.st_dev, info.st_ino == seen.st_ino else {
                    throw ChannelRefusal.unsafeTrustedKey(path: path, reason: "replaced while it was read")
                }
                try checkTrustedKey(info, path: path)
                bytes = try key.readAll(limit: maxTrustedKeyBytes)
            } catch let refusal as ChannelRefusal {
                throw refusal
            } catch let error as SystemError where error.errno == ELOOP {
                throw .unsafeTrustedKey(path: path, reason: "is a symbolic link, not a regular file")
            } catch let error as SystemError where error.errno == EFBIG {
                throw .unsafeTrustedKey(path: path, reason: "is larger than \(maxTrustedKeyBytes) bytes")
            } catch {
                throw .unreadableFile(path: path, reason: reasonText(error))
            }
            files.append((path, bytes))
        }
        return files
    }

    /// Refuses a key file that is not a small regular file only root (or the effective user) may change.
    private static func checkTrustedKey(_ info: stat, path: String) throws(ChannelRefusal) {
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            throw .unsafeTrustedKey(path: path, reason: "is \(fileTypeName(type)), not a regular file")
        }
        if let problem = ownershipProblem(info) { throw .unsafeTrustedKey(path: path, reason: problem) }
        guard info.st_size <= maxTrustedKeyBytes else {
            throw .unsafeTrustedKey(path: path, reason: "is larger than \(maxTrustedKeyBytes) bytes (\(info.st_size) bytes)")
        }
    }

    /// Why a user other than root (or the effective user) could change the file, or nil.
    private static func ownershipProblem(_ info: stat) -> String? {
        if info.st_uid != 0 && info.st_uid != geteuid() { return "owned by uid \(info.st_uid)" }
        if info.st_mode & (S_IWGRP | S_IWOTH) != 0 {
            return "mode \(String(info.st_mode & 0o7777, radix: 8)) lets the group or others write"
        }
        return nil
    }

    /// "a FIFO", "a character device", … for a file type from `st_mode`.
    static func fileTypeName(_ type: mode_t) -> String {
        switch type {
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        case S_IFDIR: return "a folder"
        default: return "a file of unknown type"
        }
    }

    /// The outcome of hashing a file against a declared length.
    enum Measure: Equatable {
        /// Exactly `length` bytes, with this lowercase hex SHA-256.
        case complete(sha256: String)
        /// The file ended after `actual` bytes.
        case short(actual: UInt64)
        /// The file has at least one byte beyond `length`.
        case long
    }

    /// Hashes the first `length` bytes of `file` (from its current position) in chunks of
    /// `buffer`'s size, handing each chunk to `copy` as well, then probes one byte further: never
    /// reads more than `length` + 1.
    static func measure(_ file: borrowing OpenFile, length: UInt64, buffer: UnsafeMutableRawBufferPointer,
                        copy: (UnsafeRawBufferPointer) throws(SystemError) -> Void = { _ in }) throws(SystemError) -> Measure {
        var hasher = SHA256()
        var remaining = length
        while remaining > 0 {
            let want = Int(min(UInt64(buffer.count), remaining))
            let got = try file.read(filling: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            if got > 0 {
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
                hasher.update(bufferPointer: chunk)
                try copy(chunk)
            }
            remaining -= UInt64(got)
            if got < want { return .short(actual: length - remaining) }
        }
        if try file.read(filling: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<1])) > 0 { return .long }
        return .complete(sha256: Hex.encode(hasher.finalize()))
    }

    /// Hashes a whole file (for the publisher's tool): its SHA-256 and length.
    static func digest(path: String) throws(SystemError) -> (sha256: String, length: UInt64) {
        let file = try OpenFile(path: path, flags: O_RDONLY)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        var hasher = SHA256()
        var length: UInt64 = 0
        while true {
            let got = try file.read(filling: buffer)
            if got == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            length += UInt64(got)
        }
        return (Hex.encode(hasher.finalize()), length)
    }
}

/// SHA-256 and length of a whole file, as the index records them (used by `hotpatch-pack`).
public enum ChannelFileDigest {
    /// The file's lowercase hex SHA-256 and its length in bytes; a file that cannot be read is
    /// `ArtifactError.system`.
    public static func compute(path: String) throws(ArtifactError) -> (sha256: String, length: UInt64) {
        do throws(SystemError) {
            return try ChannelFiles.digest(path: path)
        } catch {
            throw .system(error)
        }
    }
}
