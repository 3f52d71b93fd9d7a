import Glibc

/// A failed system call in the watchers, with the call's name and errno.
public struct WatchError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The system call that failed, e.g. `inotify_add_watch`.
    public var operation: String
    /// The errno it set.
    public var errno: Int32
    /// What it was called on (a path), when that helps.
    public var context: String?

    /// "Failed to <operation> <context>: <strerror>".
    public var description: String {
        let reason = String(cString: strerror(errno))
        return "Failed to \(operation)\(context.map { " \($0)" } ?? ""): \(reason)"
    }
}

/// The two ends of a watcher thread's wake-up channel.
struct Wakeup: Sendable {
    /// The end the watcher thread polls.
    var read: Int32
    /// The end `stop()` writes to.
    var write: Int32
    // Ownership: the thread closes `read` when it ends; the watcher closes `write` in its deinit.
    // So `stop()` never writes to a closed descriptor number that may have been reused meanwhile.
}

/// The watchers' single choke point for system calls: `-1` becomes a `WatchError`, and `EINTR` is
/// retried here so callers never see it.
enum WatchSystem {
    /// Runs `call` until it does not fail with EINTR; throws on any other failure.
    @discardableResult
    static func check<T: BinaryInteger>(
        _ operation: String, _ context: String? = nil, _ call: () -> T
    ) throws(WatchError) -> T {
        while true {
            let result = call()
            if result >= 0 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw WatchError(operation: operation, errno: code, context: context)
        }
    }

    /// Closes `fd`, ignoring errors: after close(2) the descriptor is gone whatever it returns.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Waits until one of `fds` is readable or `timeoutMilliseconds` pass (-1: forever);
    /// returns which were readable.
    static func poll(_ fds: [Int32], timeoutMilliseconds: Int32) throws(WatchError) -> [Bool] {
        var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        try check("poll") { entries.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) } }
        return entries.map { $0.revents != 0 }
    }

    /// A socket pair used to wake a watcher's thread for shutdown: the thread polls `read`, `wake`
    /// writes. (A socket pair because glibc's `pipe2` and `eventfd` are not visible from Swift.)
    static func makeWakeup() throws(WatchError) -> Wakeup {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        try check("socketpair") { socketpair(AF_UNIX, type, 0, &fds) }
        return Wakeup(read: fds[0], write: fds[1])
    }

    /// Wakes the thread polling `wakeup.read`; a full buffer already means "wake up".
    ///
    /// MSG_NOSIGNAL because the thread may already have ended and closed its end: that must be a
    /// harmless EPIPE, not a SIGPIPE that kills the agent.
    static func wake(_ wakeup: Wakeup) {
        var one: UInt8 = 1
        _ = send(wakeup.write, &one, 1, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
    }
}

extension WatchSystem {
    /// Starts a detached OS thread running `body`.
    ///
    /// Watchers block in poll(2); doing that on a dedicated thread keeps Swift's small cooperative
    /// pool (two threads on this kind of host) free, and the wake-up eventfd ends the thread.
    static func spawnThread(_ body: @escaping @Sendable () -> Void) throws(WatchError) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw WatchError(operation: "pthread_create", errno: result, context: nil)
        }
        pthread_detach(thread)
    }
}
