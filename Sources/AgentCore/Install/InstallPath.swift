import Glibc

/// What the install path rules know of one file-system entry: its owner and its `st_mode` (type
/// and permission bits), as lstat(2) reports them.
struct PathEntry: Equatable, Sendable {
    /// The owner's uid.
    var owner: uid_t
    /// Type and permission bits.
    var mode: mode_t

    /// An entry with this owner and mode.
    init(owner: uid_t, mode: mode_t) {
        self.owner = owner
        self.mode = mode
    }

    /// The entry lstat(2) described.
    init(_ info: stat) {
        self.init(owner: info.st_uid, mode: info.st_mode)
    }

    var isDirectory: Bool { mode & S_IFMT == S_IFDIR }
    var isSymbolicLink: Bool { mode & S_IFMT == S_IFLNK }
    var isWritableByGroupOrOthers: Bool { mode & (S_IWGRP | S_IWOTH) != 0 }
    var isSticky: Bool { mode & S_ISVTX != 0 }
    var octalMode: String { String(mode & 0o7777, radix: 8) }
}

/// The rules that decide whether a root write may go through a path: whoever can change a
/// directory on the way can redirect the write (replace a component by a symbolic link, or rename
/// a directory away), so every directory must be changeable only by trusted users. Pure: the
/// shell, `InstallPath.resolve`, feeds them lstat(2) results component by component.
enum InstallPathRules {
    /// Why `directory` (itself reached through trusted directories) cannot be trusted to keep
    /// `child` (nil when nothing is there yet), or nil when it can. A directory must belong to a
    /// trusted user and be writable by nobody else; a sticky directory that others may write
    /// (`/tmp`) is allowed when `child` belongs to a trusted user, because the sticky bit keeps
    /// others from renaming or removing it.
    static func problem(directory: PathEntry, child: PathEntry?, trusted: Set<uid_t>) -> String? {
        guard directory.isDirectory else { return "is not a directory" }
        guard trusted.contains(directory.owner) else {
            return "is a directory owned by uid \(directory.owner), who could redirect the write"
        }
        guard directory.isWritableByGroupOrOthers else { return nil }
        guard directory.isSticky else {
            return "is a directory with mode \(directory.octalMode): its group or others could redirect the write"
        }
        if let child, !trusted.contains(child.owner) {
            return "is a sticky directory others may write (mode \(directory.octalMode)) and holds the next component owned by uid \(child.owner)"
        }
        return nil
    }

    /// Why the symbolic link `link` in `directory` must not be followed, or nil: only a link of a
    /// trusted user in a directory nobody else may write (e.g. merged-/usr's `/lib → usr/lib`).
    static func problemFollowing(link: PathEntry, in directory: PathEntry, trusted: Set<uid_t>) -> String? {
        guard trusted.contains(link.owner) else {
            return "is a symbolic link owned by uid \(link.owner), who could point it anywhere"
        }
        guard !directory.isWritableByGroupOrOthers else {
            return "is a symbolic link in a directory others may write (mode \(directory.octalMode))"
        }
        return nil
    }

    /// The users a root write may trust: root, and the agent's own user (a test run without root).
    static var trustedOwners: Set<uid_t> { [0, geteuid()] }
}

/// The thin shell over `InstallPathRules`: walks a path component by component with lstat(2) and
/// readlink(2), following only the symbolic links the rules allow, and returns the path with
/// every link resolved. What it returns can then be written through by name: every directory on
/// it is one only trusted users can change.
enum InstallPath {
    /// At most this many symbolic links are followed (the kernel's own limit, MAXSYMLINKS).
    static let linkLimit = 40

    /// The real path of `path`'s parent directory joined with `path`'s last component. Throws
    /// `AgentCoreError.untrustedPath` naming `path`, the component and the rule it broke, or
    /// `.systemCall` for a component that is missing or unreadable.
    static func resolve(_ path: String, trusted: Set<uid_t> = InstallPathRules.trustedOwners) throws(AgentCoreError) -> String {
        guard path.hasPrefix("/") else {
            throw .untrustedPath(path: path, component: path, reason: "is not an absolute path")
        }
        let name = FileSystem.baseName(path)
        guard name != "/", name != ".", name != ".." else {
            throw .untrustedPath(path: path, component: path, reason: "does not name a file")
        }
        let directory = try resolveDirectory(FileSystem.directoryName(path), for: path, trusted: trusted)
        let child = try FileSystem.status(directory.path + "/" + name).map { PathEntry($0) }
        if let problem = InstallPathRules.problem(directory: directory.entry, child: child, trusted: trusted) {
            throw .untrustedPath(path: path, component: directory.path, reason: problem)
        }
        return (directory.path == "/" ? "" : directory.path) + "/" + name
    }

    /// Resolves the directory `start`; `target` is the path named in errors.
    private static func resolveDirectory(_ start: String, for target: String, trusted: Set<uid_t>)
        throws(AgentCoreError) -> (path: String, entry: PathEntry)
    {
        func status(_ path: String) throws(AgentCoreError) -> PathEntry {
            guard let info = try FileSystem.status(path) else {
                throw .systemCall(name: "resolve", errno: ENOENT, subject: "\(path) (on the way to \(target))")
            }
            return PathEntry(info)
        }
        let root = try status("/")
        if let problem = InstallPathRules.problem(directory: root, child: nil, trusted: trusted) {
            throw .untrustedPath(path: target, component: "/", reason: problem)
        }
        var current = (path: "/", entry: root)
        // Components still to walk, next one last.
        var pending = Array(start.split(separator: "/").map(String.init).reversed())
        var links = 0
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                let parent = FileSystem.directoryName(current.path)
                current = (parent, try status(parent))
                continue
            }
            let candidate = (current.path == "/" ? "" : current.path) + "/" + component
            let entry = try status(candidate)
            if let problem = InstallPathRules.problem(directory: current.entry, child: entry, trusted: trusted) {
                throw .untrustedPath(path: target, component: current.path, reason: problem)
            }
            if entry.isSymbolicLink {
                if let problem = InstallPathRules.problemFollowing(link: entry, in: current.entry, trusted: trusted) {
                    throw .untrustedPath(path: target, component: candidate, reason: problem)
                }
                links += 1
                guard links <= linkLimit else {
                    throw .systemCall(name: "resolve", errno: ELOOP, subject: "\(candidate) (on the way to \(target))")
                }
                let destination = try FileSystem.readLink(candidate)
                pending.append(contentsOf: destination.split(separator: "/").map(String.init).reversed())
                if destination.hasPrefix("/") { current = ("/", root) }
                continue
            }
            guard entry.isDirectory else {
                throw .systemCall(name: "resolve", errno: ENOTDIR, subject: "\(candidate) (on the way to \(target))")
            }
            current = (candidate, entry)
        }
        return current
    }
}
