import Glibc

/// A process (thread-group) id as the kernel numbers it; the C type is `pid_t`.
public struct ProcessID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The kernel's number for the process.
    public let rawValue: Int32

    /// Wraps a raw process id.
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The process running this code. The corresponding C function is getpid(2).
    public static var current: ProcessID { ProcessID(getpid()) }

    /// The decimal number, as /proc names it.
    public var description: String { String(rawValue) }

    /// Its main thread (the thread-group leader), whose id the kernel makes equal to the process's.
    public var mainThread: ThreadID { ThreadID(rawValue) }

    /// Orders by number, as /proc lists processes.
    public static func < (lhs: ProcessID, rhs: ProcessID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A thread id as the kernel numbers it (an entry of /proc/PID/task); the C type is `pid_t`.
public struct ThreadID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The kernel's number for the thread.
    public let rawValue: Int32

    /// Wraps a raw thread id.
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The thread running this code. The corresponding C function is gettid(2).
    public static var current: ThreadID { ThreadID(systemGettid()) }

    /// The decimal number, as /proc names it.
    public var description: String { String(rawValue) }

    /// Orders by number, as /proc/PID/task lists threads.
    public static func < (lhs: ThreadID, rhs: ThreadID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// gettid(2), which Glibc's Swift module does not import (it is declared only under _GNU_SOURCE):
/// found by dlsym in the already loaded libc, so no C shim is needed.
private let systemGettid: @convention(c) () -> pid_t = {
    guard let symbol = dlsym(nil, "gettid") else {
        // glibc older than 2.30: fall back to the kernel's own answer through /proc/thread-self.
        return { threadSelfFromProc() }
    }
    return unsafeBitCast(symbol, to: (@convention(c) () -> pid_t).self)
}()

/// The calling thread's id from the /proc/thread-self link ("PID/task/TID"); the pid if unreadable.
private func threadSelfFromProc() -> pid_t {
    guard let target = try? Files.readLink("/proc/thread-self"),
          let last = target.split(separator: "/").last, let tid = pid_t(last) else { return getpid() }
    return tid
}
