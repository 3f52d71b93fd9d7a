import CPtrace
import Glibc
import LinuxSystem

/// A process's /proc directory held open: everything read through it is that one process's, even
/// once its pid is reused, since the kernel binds the open directory to the process and not to the
/// number (a read after the process is reaped fails with ESRCH, whoever has the pid by then). The
/// files under it are opened by name relative to it, so their paths are not walked from /proc
/// again. Closed when the last reference goes. Used by one thread at a time (a worker's pass over
/// one process): the maps file it keeps is not shared between threads.
public final class ProcessDirectory: @unchecked Sendable {
    /// The process's id when the directory was opened.
    public let pid: ProcessID
    private let directory: OpenFile
    /// The process's parent as its start time was read through this directory (`identified`,
    /// `ProcFS.identity(of:)`); nil before.
    public internal(set) var parent: ProcessID?
    /// How many threads the process had as its start time was read through this directory; nil
    /// before. A hold of a process that had one seizes it before listing its threads.
    public internal(set) var threadsWhenIdentified: Int?
    /// The maps file last read, kept open for questions about one mapping (PROCMAP_QUERY), which
    /// the kernel answers on any open maps file, whatever was read from it.
    private var keptMaps: KeptFile?
    /// O_PATH (not exported to Swift by Glibc): a handle to name files relative to, with no read
    /// access of its own. The same value on every architecture Linux and Swift share.
    private static let pathOnly: Int32 = 0o10000000

    /// Opens /proc/PID; throws ENOENT when no such process is listed.
    public init(_ pid: ProcessID) throws(SystemError) {
        self.pid = pid
        directory = try OpenFile(path: "/proc/\(pid)", flags: ProcessDirectory.pathOnly | O_DIRECTORY)
    }

    /// The directory of `identity`'s process, once its start time, read through the directory,
    /// shows that very process there and alive; nil when it is gone or its pid is another's. From
    /// then on the directory tells the two apart even if a process started in the same clock tick
    /// (the start time's unit) takes the pid.
    public static func identified(_ identity: ProcessIdentity) -> ProcessDirectory? {
        guard let directory = try? ProcessDirectory(identity.pid),
              let bytes = try? directory.readRecord("stat", limit: 1 << 16),
              let stat = try? ProcessStatParser.parse(bytes, path: "/proc/\(identity.pid)/stat"),
              ProcFS.isSameProcess(identity, stat: stat) else { return nil }
        directory.parent = stat.parent
        directory.threadsWhenIdentified = stat.threads
        return directory
    }

    /// Whether the process this directory was opened for is still there (running, stopped, or
    /// exited but not reaped): while it is, its pid is no other process's. One fstatat(2) of its
    /// stat file, which the kernel answers ESRCH once the process is reaped.
    public var exists: Bool {
        var info = stat()
        return fstatat(directory.raw, "stat", &info, 0) == 0
    }

    /// `name` (a path relative to the process's directory, such as "status" or "task/TID/status")
    /// opened with `flags`; errors name /proc/PID/`name`.
    func open(_ name: String, flags: Int32) throws(SystemError) -> OpenFile {
        try OpenFile(in: directory, name: name, path: "/proc/\(pid)/\(name)", flags: flags)
    }

    /// The whole of the process's maps file, which is then kept open for `withMapsFile`.
    func readMaps() throws(SystemError) -> [UInt8] {
        let maps = try open("maps", flags: O_RDONLY)
        let bytes = try maps.readAll(limit: 64 << 20)
        keptMaps = KeptFile(maps)
        return bytes
    }

    /// Runs `body` with the descriptor of an open maps file of the process (the one last read, or
    /// one opened now and kept).
    func withMapsFile<Result>(_ body: (Int32, String) throws(SystemError) -> Result) throws(SystemError) -> Result {
        if keptMaps == nil { keptMaps = KeptFile(try open("maps", flags: O_RDONLY)) }
        return try body(keptMaps!.file.raw, keptMaps!.file.path)
    }

    /// A file the kernel prints whole at each read (`Files.readRecord`): stat, status, cgroup.
    func readRecord(_ name: String, limit: Int) throws(SystemError) -> [UInt8] {
        try open(name, flags: O_RDONLY).readAll(limit: limit, oneRecord: true)
    }

    /// The target of the link `name` (such as "exe"). readlinkat(2).
    func readLink(_ name: String) throws(SystemError) -> String {
        try Files.readLink(name, in: directory, path: "/proc/\(pid)/\(name)")
    }

    /// The process's threads (its task folder), in increasing order (`ThreadListing`).
    func threadIDs() throws(SystemError) -> [ThreadID] {
        try threadListing().threadIDs()
    }

    /// The process's task folder held open, to list its threads again and again.
    func threadListing() throws(SystemError) -> ThreadListing {
        ThreadListing(try open("task", flags: O_RDONLY | O_DIRECTORY))
    }
}

/// An open file a class can keep in a variable.
private final class KeptFile {
    let file: OpenFile
    init(_ file: consuming OpenFile) { self.file = file }
}

/// A process's task folder held open: each listing is a rewind and a getdents64 into one buffer,
/// no path looked up again (a hold lists the threads before and after its seizes, the second time
/// with the process held). A read that left room for several more entries had them all (the kernel
/// fills the buffer while threads remain), so a process of a few threads costs one read a listing,
/// not a second that only says the folder ended.
final class ThreadListing {
    private let task: OpenFile
    private var listed = false
    private static let capacity = 32 * 1024
    /// Room for two more of the largest entries a thread id makes (a 19-byte header, up to ten
    /// digits and the terminator, rounded up to 8): less left means the buffer may have cut the list.
    private static let complete = capacity - 2 * 32

    init(_ task: consuming OpenFile) { self.task = task }

    /// The threads now, in increasing order.
    func threadIDs() throws(SystemError) -> [ThreadID] {
        let descriptor = task.raw
        if listed { try SystemCall.run("lseek", task.path) { lseek(descriptor, 0, SEEK_SET) } }
        listed = true
        var tids: [ThreadID] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.capacity, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let filled = try SystemCall.run("getdents64", task.path) {
                cptrace_getdents64(descriptor, buffer.baseAddress!, UInt(Self.capacity))
            }
            if filled == 0 { break }
            var offset = 0
            while offset < filled {
                // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name (NUL-terminated).
                let length = Int(buffer.load(fromByteOffset: offset + 16, as: UInt16.self))
                guard length > 0 else { break }
                let name = UnsafeRawBufferPointer(rebasing: buffer[(offset + 19)..<(offset + length)]).prefix { $0 != 0 }
                if let tid = ProcFS.idNumber(name) { tids.append(ThreadID(tid)) }
                offset += length
            }
            if filled <= Self.complete { break }
        }
        return tids.sorted()
    }
}
