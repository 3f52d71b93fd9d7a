import CPtrace
import Glibc
import LinuxSystem

/// Reads /proc. A process that vanishes while being read surfaces as a `SystemError` with
/// errno ENOENT or ESRCH (see `Error.isProcessGone`), so callers can say "process gone".
public enum ProcFS {
    /// Every process currently listed in /proc (its numeric entries), in increasing order.
    public static func processIDs() throws -> [ProcessID] {
        try numericEntries(of: "/proc").map(ProcessID.init)
    }

    /// The threads of `pid` (/proc/PID/task), in increasing order.
    public static func threadIDs(of pid: ProcessID) throws -> [ThreadID] {
        try numericEntries(of: "/proc/\(pid)/task").map(ThreadID.init)
    }

    /// The memory mappings of `pid` (/proc/PID/maps). Kernel threads, and zombies whose memory is
    /// already released, have none and give []; a reaped process throws ENOENT.
    public static func maps(of pid: ProcessID) throws -> [MemoryMapping] {
        let path = "/proc/\(pid)/maps"
        let bytes = try Files.read(path)
        // An exited process still reads as empty once its file is open: tell that apart from a
        // kernel thread by checking the process is still listed.
        if bytes.isEmpty { _ = try Files.status("/proc/\(pid)") }
        return try mappings(bytes, path: path)
    }

    /// `maps(of:)` of the process `directory` was opened for.
    public static func maps(of directory: ProcessDirectory) throws -> [MemoryMapping] {
        let bytes = try directory.readMaps()
        if bytes.isEmpty, !directory.exists { throw SystemError(call: "fstatat", errno: ESRCH, subject: "/proc/\(directory.pid)/stat") }
        return try mappings(bytes, path: "/proc/\(directory.pid)/maps")
    }

    private static func mappings(_ bytes: [UInt8], path: String) throws -> [MemoryMapping] {
        bytes.isEmpty ? [] : try ProcMapsParser.parse(bytes, path: path)
    }

    /// Nanoseconds thread `tid` of `pid` has spent on a CPU (first field of
    /// /proc/PID/task/TID/schedstat), or nil if unreadable.
    static func cpuTime(process pid: ProcessID, thread tid: ThreadID) -> UInt64? {
        guard let bytes = try? Files.readRecord("/proc/\(pid)/task/\(tid)/schedstat", limit: 256) else { return nil }
        return String(decoding: bytes, as: UTF8.self).split(separator: " ").first.flatMap { UInt64($0) }
    }

    /// Where the kernel mapped `pid`'s dynamic linker (`AT_BASE` of /proc/PID/auxv); nil for a
    /// program without one (a static executable).
    public static func interpreterBase(of pid: ProcessID) throws(SystemError) -> UInt64? {
        let bytes = try Files.readRecord("/proc/\(pid)/auxv", limit: 4096)
        let atBase: UInt64 = 7
        var offset = 0
        while offset + 16 <= bytes.count {
            let (type, value) = bytes.withUnsafeBytes {
                ($0.loadUnaligned(fromByteOffset: offset, as: UInt64.self), $0.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
            }
            if type == 0 { break }
            if type == atBase { return value == 0 ? nil : value }
            offset += 16
        }
        return nil
    }

    /// The status of `pid` (/proc/PID/status).
    public static func status(of pid: ProcessID) throws -> ProcessStatus {
        let path = "/proc/\(pid)/status"
        return try ProcessStatus.parse(Files.readRecord(path, limit: 1 << 20), path: path)
    }

    /// The status of thread `tid` of `pid` (/proc/PID/task/TID/status): its own seccomp mode and
    /// tracer, which may differ from its leader's.
    public static func status(of pid: ProcessID, thread tid: ThreadID) throws -> ProcessStatus {
        let path = "/proc/\(pid)/task/\(tid)/status"
        return try ProcessStatus.parse(Files.readRecord(path, limit: 1 << 20), path: path)
    }

    /// `status(of:)` of the process `directory` was opened for.
    public static func status(of directory: ProcessDirectory) throws -> ProcessStatus {
        try ProcessStatus.parse(directory.readRecord("status", limit: 1 << 20), path: "/proc/\(directory.pid)/status")
    }

    /// `status(of:thread:)` of a thread of the process `directory` was opened for. The main
    /// thread's is the process's own `status` (the kernel prints both from that thread): one
    /// directory fewer to look up in /proc than through `task/`.
    public static func status(of directory: ProcessDirectory, thread tid: ThreadID) throws -> ProcessStatus {
        if tid == directory.pid.mainThread { return try status(of: directory) }
        let name = "task/\(tid)/status"
        return try ProcessStatus.parse(directory.readRecord(name, limit: 1 << 20), path: "/proc/\(directory.pid)/\(name)")
    }

    /// The process thread `tid` belongs to (`Tgid:` of /proc/TID/status, which the kernel serves
    /// for any thread id though it lists only processes); throws ENOENT once the thread is gone.
    public static func process(ofThread tid: ThreadID) throws -> ProcessID {
        let path = "/proc/\(tid)/status"
        return try ProcessStatus.parse(Files.readRecord(path, limit: 1 << 20), path: path).processID
    }

    /// The identity (pid and start time) of `pid` (/proc/PID/stat).
    public static func identity(of pid: ProcessID) throws -> ProcessIdentity {
        let path = "/proc/\(pid)/stat"
        let stat = try ProcessStatParser.parse(Files.readRecord(path, limit: 1 << 16), path: path)
        return ProcessIdentity(pid: pid, startTime: stat.startTime)
    }

    /// The identity of the process `directory` was opened for: whatever later reads through the
    /// directory find is that process's.
    public static func identity(of directory: ProcessDirectory) throws -> ProcessIdentity {
        let stat = try ProcessStatParser.parse(directory.readRecord("stat", limit: 1 << 16), path: "/proc/\(directory.pid)/stat")
        directory.parent = stat.parent
        directory.threadsWhenIdentified = stat.threads
        return ProcessIdentity(pid: directory.pid, startTime: stat.startTime)
    }

    /// True while the process is alive (not a zombie) and its pid was not reused by a later process.
    /// Two processes started in the same clock tick look alike here; `ProcessDirectory.identified`
    /// tells them apart from then on.
    public static func isSameProcess(_ identity: ProcessIdentity) -> Bool {
        let path = "/proc/\(identity.pid)/stat"
        guard let bytes = try? Files.readRecord(path, limit: 1 << 16) else { return false }
        return isSameProcess(identity, stat: bytes, path: path)
    }

    /// Whether the /proc/PID/stat text `bytes` is `identity`'s, alive.
    static func isSameProcess(_ identity: ProcessIdentity, stat bytes: [UInt8], path: String) -> Bool {
        guard let stat = try? ProcessStatParser.parse(bytes, path: path) else { return false }
        return isSameProcess(identity, stat: stat)
    }

    /// Whether the parsed /proc/PID/stat `stat` is `identity`'s, alive.
    static func isSameProcess(_ identity: ProcessIdentity, stat: (state: Character, parent: ProcessID, threads: Int, startTime: UInt64)) -> Bool {
        stat.startTime == identity.startTime && stat.state != "Z" && stat.state != "X"
    }

    /// Whether processes `pid` and `other` share one address space (kcmp(2), `KCMP_VM`): a child
    /// made by `vfork` (as `posix_spawn` makes them) shares its parent's until it execs or exits.
    /// nil when the kernel cannot say (no kcmp: `CONFIG_KCMP` off; either process gone).
    public static func sharesMemory(_ pid: ProcessID, with other: ProcessID) -> Bool? {
        guard let order = try? SystemCall.run("kcmp(KCMP_VM)", "processes \(pid) and \(other)", { cptrace_kcmp_vm(pid.rawValue, other.rawValue) })
        else { return nil }
        return order == 0
    }

    /// The executable of `pid` (readlink of /proc/PID/exe), without the kernel's " (deleted)" suffix;
    /// kernel threads have none and throw ENOENT, like a process that is gone.
    public static func executablePath(of pid: ProcessID) throws -> String {
        executablePath(linkedAs: try Files.readLink("/proc/\(pid)/exe"))
    }

    /// `executablePath(of:)` of the process `directory` was opened for.
    public static func executablePath(of directory: ProcessDirectory) throws -> String {
        executablePath(linkedAs: try directory.readLink("exe"))
    }

    private static func executablePath(linkedAs target: String) -> String {
        let suffix = " (deleted)"
        return target.hasSuffix(suffix) ? String(target.dropLast(suffix.count)) : target
    }

    /// "/proc/PID/map_files/START-END" (lowercase hex, no 0x): opens the very file behind `mapping`
    /// even when it was deleted or replaced on disk (needs CAP_SYS_ADMIN in the initial namespace).
    public static func mappedFilePath(of pid: ProcessID, mapping: MemoryMapping) -> String {
        // Written byte by byte: each mapped object of each process a pass looks at asks for one,
        // and interpolating two radix-16 strings showed in its profile.
        String(unsafeUninitializedCapacity: 80) { out in
            var length = 0
            func put(_ text: StaticString) {
                text.withUTF8Buffer { for byte in $0 { out[length] = byte; length += 1 } }
            }
            func put(_ value: UInt64, radix: UInt64) {
                // Least significant digit first, then turned around.
                let first = length
                var rest = value
                repeat {
                    let digit = UInt8(rest % radix)
                    out[length] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                    length += 1
                    rest /= radix
                } while rest > 0
                var low = first, high = length - 1
                while low < high {
                    out.swapAt(low, high)
                    low += 1
                    high -= 1
                }
            }
            put("/proc/")
            put(UInt64(UInt32(bitPattern: pid.rawValue)), radix: 10)
            put("/map_files/")
            put(mapping.start, radix: 16)
            put("-")
            put(mapping.end, radix: 16)
            return length
        }
    }

    /// The executable, private, file-backed mapping of `pid` that covers `address`, as the kernel
    /// answers now (PROCMAP_QUERY, Linux 6.11 and later: one question, not every mapping listed);
    /// nil when none does. The path is not asked for (empty). Throws when the kernel cannot answer
    /// (older kernels: ENOTTY) or the process is gone.
    static func privateExecutableFileMapping(of pid: ProcessID, covering address: UInt64) throws(SystemError) -> MemoryMapping? {
        let path = "/proc/\(pid)/maps"
        let maps = try OpenFile(path: path, flags: O_RDONLY)
        return try privateExecutableFileMapping(maps: maps.raw, path: path, covering: address)
    }

    /// `privateExecutableFileMapping(of:covering:)` asked of the process `directory` was opened for,
    /// on the maps file it keeps open (no file opened a question).
    static func privateExecutableFileMapping(of directory: ProcessDirectory, covering address: UInt64) throws(SystemError) -> MemoryMapping? {
        try directory.withMapsFile { descriptor, path throws(SystemError) in
            try privateExecutableFileMapping(maps: descriptor, path: path, covering: address)
        }
    }

    private static func privateExecutableFileMapping(maps: Int32, path: String, covering address: UInt64) throws(SystemError) -> MemoryMapping? {
        var found = cptrace_mapping()
        let executableFileBacked: UInt64 = 0x04 | 0x20, shared: UInt64 = 0x08
        do {
            _ = try SystemCall.run("ioctl(PROCMAP_QUERY)", path) { cptrace_query_mapping(maps, address, executableFileBacked, &found) }
        } catch where error.errno == ENOENT {
            return nil
        }
        guard found.flags & shared == 0 else { return nil }
        return MemoryMapping(start: found.start, end: found.end, isReadable: found.flags & 0x01 != 0,
                             isWritable: found.flags & 0x02 != 0, isExecutable: true, isShared: false, offset: found.offset,
                             deviceMajor: found.device_major, deviceMinor: found.device_minor, inode: found.inode,
                             path: "", isDeleted: false)
    }

    /// The text of /proc/PID/cgroup (the process's cgroup in each hierarchy), or nil once it is gone.
    public static func cgroup(of pid: ProcessID) -> String? {
        guard let bytes = try? Files.readRecord("/proc/\(pid)/cgroup", limit: 64 << 10) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `cgroup(of:)` of the process `directory` was opened for.
    public static func cgroup(of directory: ProcessDirectory) -> String? {
        guard let bytes = try? directory.readRecord("cgroup", limit: 64 << 10) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The id of the current boot (/proc/sys/kernel/random/boot_id), without the trailing newline.
    public static func bootID() throws -> String {
        let path = "/proc/sys/kernel/random/boot_id"
        var bytes = try Files.read(path, limit: 4096)
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: " ") { bytes.removeLast() }
        var first = 0
        while first < bytes.count, bytes[first] == UInt8(ascii: " ") { first += 1 }
        guard first < bytes.count else { throw EngineError.malformedProcFile(path: path, reason: "empty") }
        return String(decoding: bytes[first...], as: UTF8.self)
    }

    /// The names of `directory` that are decimal numbers fitting a pid, as sorted numbers.
    private static func numericEntries(of directory: String) throws -> [Int32] {
        try Files.list(directory).compactMap { idNumber($0.utf8) }.sorted()
    }

    /// The decimal `name` of a /proc or task entry as a pid or thread id; nil for anything else
    /// ("self", ".", a number too large for one).
    static func idNumber(_ name: some Sequence<UInt8>) -> Int32? {
        var value: Int32 = 0
        var digits = 0
        for byte in name {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int32(byte - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = sum
            digits += 1
        }
        return digits > 0 ? value : nil
    }
}
