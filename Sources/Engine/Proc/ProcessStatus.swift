import LinuxSystem

/// The fields of /proc/PID/status that decide whether and how a process can be patched, who may
/// touch it, and which process a thread belongs to. The one reader of that file in the package.
public struct ProcessStatus: Sendable {
    /// The four user ids of a process (`Uid:`), in the kernel's order.
    public struct UserIDs: Sendable, Equatable, CustomStringConvertible {
        /// The real user id (who started it; kill(2) compares against it).
        public var real: UInt32
        /// The effective user id (what permission checks use).
        public var effective: UInt32
        /// The saved set-user-ID.
        public var saved: UInt32
        /// The file system user id.
        public var fileSystem: UInt32

        /// Names each id.
        public init(real: UInt32, effective: UInt32, saved: UInt32, fileSystem: UInt32) {
            self.real = real
            self.effective = effective
            self.saved = saved
            self.fileSystem = fileSystem
        }

        /// "real R, effective E, saved S, fs F".
        public var description: String { "real \(real), effective \(effective), saved \(saved), fs \(fileSystem)" }
    }

    /// The command name (`comm`, at most 15 bytes; the kernel escapes `\n` and `\\`).
    public var name: String
    /// The scheduler state letter: R, S, D, T, t, Z, X, I, …
    public var state: Character
    /// The process (thread group) this task belongs to (`Tgid:`): itself for a process, the
    /// process for a thread read as /proc/TID/status.
    public var processID: ProcessID
    /// The thread tracing this one (`TracerPid:` names the tracer's thread id); nil when none.
    public var tracer: ThreadID?
    /// 0 when seccomp is off, 1 in strict mode, 2 when filters are installed (later kernels may add more).
    public var seccompMode: Int
    /// How many filters are attached (`Seccomp_filters:`, kernel 5.9+); nil when the kernel does not say.
    public var seccompFilterCount: Int?
    /// The user ids (`Uid:`): real, effective, saved, file system.
    public var userIDs: UserIDs
    /// The signals it has a handler for (`SigCgt:`, bit N-1 for signal N); nil when not printed.
    public var caughtSignals: UInt64?
    /// The number of threads in the process.
    public var threadCount: Int
    /// The process's id in its own (innermost) pid namespace, the last field of `NStgid:`; nil when
    /// the kernel does not print it (before 4.1).
    public var namespaceProcessID: Int32? = nil
    /// The task's id in its own pid namespace, the last field of `NSpid:` (the thread id that
    /// `gettid` returns in it, for /proc/PID/task/TID/status); nil when not printed.
    public var namespaceThreadID: Int32? = nil

    /// Parses the text of /proc/PID/status; `path` names the file in errors. Throws `malformedProcFile`
    /// when Name, State, Tgid, TracerPid, Uid (all four ids) or Threads is missing or unreadable. A kernel without
    /// CONFIG_SECCOMP prints no `Seccomp:` line; that reads as mode 0.
    public static func parse(_ bytes: [UInt8], path: String) throws -> ProcessStatus {
        func bad(_ reason: String) -> EngineError { .malformedProcFile(path: path, reason: reason) }
        return try bytes.withUnsafeBufferPointer { buffer in
            var name: String?, state: Character?, tgid: Int32?, tracer: Int32?, uids: UserIDs?, threads: Int?
            var caught: UInt64?
            var mode = 0
            var filters: Int?
            var namespaceTgid: Int32?, namespacePid: Int32?
            var s = ByteScanner(buffer)
            while !s.isAtEnd {
                let lineEnd = s.next(UInt8(ascii: "\n"))
                let colon = s.next(UInt8(ascii: ":"))
                defer { s.index = lineEnd + 1 }
                guard colon < lineEnd else { continue }
                let key = UnsafeBufferPointer(rebasing: buffer[s.index..<colon])
                s.index = colon + 1
                if ByteScanner.equals(key, "Name") {
                    // The name follows a single tab and may itself start with blanks.
                    _ = s.take(UInt8(ascii: "\t"))
                    name = s.text(s.index..<lineEnd)
                    continue
                }
                s.skipBlanks()
                if ByteScanner.equals(key, "State") {
                    guard s.index < lineEnd, let b = s.peek, b > 0x20, b < 0x7f else { throw bad("State: has no letter") }
                    state = Character(Unicode.Scalar(b))
                } else if ByteScanner.equals(key, "Tgid") {
                    guard let v = s.decimal(), v > 0, v <= UInt64(Int32.max) else { throw bad("Tgid: is not a pid") }
                    tgid = Int32(v)
                } else if ByteScanner.equals(key, "SigCgt") {
                    guard let v = s.hex() else { throw bad("SigCgt: is not a signal mask") }
                    caught = v
                } else if ByteScanner.equals(key, "TracerPid") {
                    guard let v = s.decimal(), v <= UInt64(Int32.max) else { throw bad("TracerPid: is not a pid") }
                    tracer = Int32(v)
                } else if ByteScanner.equals(key, "Uid") {
                    var ids: [UInt32] = []
                    for which in ["real", "effective", "saved", "fs"] {
                        s.skipBlanks()
                        guard s.index < lineEnd, let id = s.decimal(), id <= UInt32.max else { throw bad("Uid: has no \(which) uid") }
                        ids.append(UInt32(id))
                    }
                    uids = UserIDs(real: ids[0], effective: ids[1], saved: ids[2], fileSystem: ids[3])
                } else if ByteScanner.equals(key, "Threads") {
                    guard let v = s.decimal(), v <= UInt64(Int.max) else { throw bad("Threads: is not a count") }
                    threads = Int(v)
                } else if ByteScanner.equals(key, "Seccomp") {
                    // Kept as given: a mode a later kernel adds must not make every process unreadable.
                    guard let v = s.decimal(), v <= UInt64(Int.max) else { throw bad("Seccomp: is not a number") }
                    mode = Int(v)
                } else if ByteScanner.equals(key, "Seccomp_filters") {
                    guard let v = s.decimal(), v <= UInt64(Int.max) else { throw bad("Seccomp_filters: is not a count") }
                    filters = Int(v)
                } else if ByteScanner.equals(key, "NStgid") || ByteScanner.equals(key, "NSpid") {
                    // One id per pid namespace, outermost first: the last is the process's own view.
                    var last: UInt64?
                    while s.index < lineEnd, let v = s.decimal() {
                        last = v
                        s.skipBlanks()
                    }
                    // Unreadable, it is left out: only the injection's one-stop ending uses it.
                    let id = last.flatMap { $0 > 0 && $0 <= UInt64(Int32.max) ? Int32($0) : nil }
                    if ByteScanner.equals(key, "NStgid") { namespaceTgid = id } else { namespacePid = id }
                }
            }
            guard let name else { throw bad("no Name: line") }
            guard let state else { throw bad("no State: line") }
            guard let tgid else { throw bad("no Tgid: line") }
            guard let tracer else { throw bad("no TracerPid: line") }
            guard let uids else { throw bad("no Uid: line") }
            guard let threads else { throw bad("no Threads: line") }
            return ProcessStatus(name: name, state: state, processID: ProcessID(tgid), tracer: tracer == 0 ? nil : ThreadID(tracer),
                                 seccompMode: mode, seccompFilterCount: filters, userIDs: uids, caughtSignals: caught,
                                 threadCount: threads, namespaceProcessID: namespaceTgid, namespaceThreadID: namespacePid)
        }
    }
}
