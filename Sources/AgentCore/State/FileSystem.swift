import Glibc
import LinuxSystem

/// AgentCore's file operations: the system layer's `Files`, with a failed call wrapped as
/// `AgentCoreError.system` (what failed, on which file, and the errno).
enum FileSystem {
    /// Runs `body`, wrapping a failed system call in AgentCore's error.
    static func wrapping<Result>(_ body: () throws(SystemError) -> Result) throws(AgentCoreError) -> Result {
        do throws(SystemError) {
            return try body()
        } catch {
            throw AgentCoreError(error)
        }
    }

    /// The status of `path` without following a final symbolic link, or nil when nothing is there.
    static func status(_ path: String) throws(AgentCoreError) -> stat? {
        try wrapping { () throws(SystemError) in try Files.linkStatusIfPresent(path) }
    }

    /// Reads the whole file at `path`, refusing more than `limit` bytes; nil when it does not exist.
    static func readIfPresent(_ path: String, limit: Int = 64 << 20) throws(AgentCoreError) -> [UInt8]? {
        try wrapping { () throws(SystemError) in try Files.readIfPresent(path, limit: limit) }
    }

    /// Removes the file at `path`; a missing file is not an error.
    static func removeFile(_ path: String) throws(AgentCoreError) {
        try wrapping { () throws(SystemError) in try Files.removeIfPresent(path) }
    }

    /// Creates `path` and any missing parents with `mode`; an existing directory is fine.
    static func makeDirectories(_ path: String, mode: mode_t) throws(AgentCoreError) {
        try wrapping { () throws(SystemError) in try Files.makeDirectories(path, mode: mode) }
    }

    /// Flushes a directory's entries (a rename in it) to disk.
    static func syncDirectory(_ path: String) throws(AgentCoreError) {
        try wrapping { () throws(SystemError) in try Files.syncDirectory(path) }
    }

    /// The names in a directory, without "." and "..".
    static func list(_ path: String) throws(AgentCoreError) -> [String] {
        try wrapping { () throws(SystemError) in try Files.list(path) }
    }

    /// The target of the symbolic link at `path`.
    static func readLink(_ path: String) throws(AgentCoreError) -> String {
        try wrapping { () throws(SystemError) in try Files.readLink(path) }
    }

    /// The directory part of an absolute or relative path ("/" for "/x", "." for "x").
    static func directoryName(_ path: String) -> String { Files.directoryName(path) }

    /// The last component of a path.
    static func baseName(_ path: String) -> String { Files.baseName(path) }

    /// The prefix of the temporary files written beside `path` (see `Files.temporaryPrefix`).
    static func temporaryPrefix(for path: String) -> String { Files.temporaryPrefix(for: path) }

    /// Writes `bytes` to `path` atomically (see `Files.writeAtomically`).
    static func writeAtomically(_ path: String, bytes: [UInt8], mode: mode_t) throws(AgentCoreError) {
        try wrapping { () throws(SystemError) in try Files.writeAtomically(path, bytes: bytes, mode: mode) }
    }

    /// Writes a copy of the regular file at `source` to `path` atomically (see `Files.copyAtomically`).
    static func copyAtomically(
        from source: String, to path: String, mode: mode_t, owner: (user: uid_t, group: gid_t)? = nil
    ) throws(AgentCoreError) {
        try wrapping { () throws(SystemError) in try Files.copyAtomically(from: source, to: path, mode: mode, owner: owner) }
    }
}
