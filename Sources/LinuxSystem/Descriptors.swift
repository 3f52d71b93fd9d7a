import Glibc

/// Calls on any open descriptor (a socket, an inotify instance, /dev/kmsg), given as the kernel's
/// number. `subject` names what the descriptor is in errors ("the control socket", a path).
package enum Descriptor {
    /// Opens `path` with `flags` (O_CLOEXEC always added) and returns the descriptor, which the
    /// caller owns and closes with `close(_:)`: for a descriptor kept beyond one scope (a log
    /// followed by a thread); `OpenFile` closes itself instead. open(2).
    package static func open(_ path: String, flags: Int32) throws(SystemError) -> Int32 {
        try SystemCall.run("open", path) { Glibc.open(path, flags | O_CLOEXEC) }
    }

    /// Closes `fd`, ignoring errors: after close(2) the descriptor is gone whatever it returns, so
    /// `EINTR` is not retried on Linux.
    package static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Writes all of `bytes` in as few write(2) calls as the kernel allows (one, for a line on a
    /// terminal or pipe, so concurrent writers' lines stay whole); a zero-byte write is EIO.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8], subject: @autoclosure () -> String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let written = try SystemCall.run("write", subject()) {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            }
            if written == 0 { throw SystemError(call: "write", errno: EIO, subject: subject()) }
            offset += written
        }
    }

    /// Reads what is available into the start of `buffer`, at most `limit` bytes (default: all of
    /// it); nil when nothing is (EAGAIN), 0 at end of stream. read(2).
    package static func read(_ fd: Int32, into buffer: inout [UInt8], limit: Int? = nil,
                             subject: @autoclosure () -> String) throws(SystemError) -> Int? {
        let count = min(limit ?? buffer.count, buffer.count)
        do throws(SystemError) {
            return try SystemCall.run("read", subject()) { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, count) } }
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// Waits until one of `descriptors` is ready for `events` or `timeoutMilliseconds` pass (-1:
    /// forever); returns the `revents` of each. poll(2).
    package static func poll(_ descriptors: [Int32], events: Int16, timeoutMilliseconds: Int32,
                             subject: @autoclosure () -> String) throws(SystemError) -> [Int16] {
        var entries = descriptors.map { pollfd(fd: $0, events: events, revents: 0) }
        try SystemCall.run("poll", subject()) {
            entries.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        }
        return entries.map(\.revents)
    }

    /// Which of `descriptors` are readable (or closed, or in error) after waiting at most
    /// `timeoutMilliseconds` (-1: forever). poll(2) for POLLIN.
    package static func waitReadable(_ descriptors: [Int32], timeoutMilliseconds: Int32,
                                     subject: @autoclosure () -> String) throws(SystemError) -> [Bool] {
        try poll(descriptors, events: Int16(POLLIN), timeoutMilliseconds: timeoutMilliseconds, subject: subject()).map { $0 != 0 }
    }

    /// Moves the offset of `fd` to the end (for /dev/kmsg: only records logged from now on).
    /// lseek(2); a failure leaves the offset where it was.
    package static func seekToEnd(_ fd: Int32) {
        _ = lseek(fd, 0, SEEK_END)
    }
}

/// A wake-up channel for a thread that blocks in poll(2): the thread polls `read`, `wake()` writes
/// to `write`. Once woken, `read` stays readable, so every later wait also returns at once.
/// (A socket pair because glibc's `pipe2` and `eventfd` are not visible from Swift.)
package struct WakeupChannel: Sendable {
    /// The end the waiting thread polls.
    package let read: Int32
    /// The end `wake()` writes to.
    package let write: Int32

    /// A fresh, unwoken channel (both ends close-on-exec and non-blocking). socketpair(2).
    package init() throws(SystemError) {
        (read, write) = try Socket.unixStreamPair(nonBlocking: true, subject: "a wake-up channel")
    }

    /// Wakes the thread polling `read`; a full buffer already means "wake up".
    ///
    /// MSG_NOSIGNAL because the thread may already have ended and closed its end: that must be a
    /// harmless EPIPE, not a SIGPIPE that kills the process.
    package func wake() {
        var one: UInt8 = 1
        _ = send(write, &one, 1, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
    }

    /// Closes both ends (when one owner holds both).
    package func close() {
        Descriptor.close(read)
        Descriptor.close(write)
    }
}

/// Threads of the operating system, for loops that block in poll(2).
package enum Threads {
    /// Starts a detached thread running `body`: blocking there keeps Swift's small cooperative
    /// pool (two threads on a 2-CPU host) free. pthread_create(3).
    package static func startDetached(_ body: @escaping @Sendable () -> Void) throws(SystemError) {
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
            throw SystemError(call: "pthread_create", errno: result, subject: "a watcher thread")
        }
        pthread_detach(thread)
    }
}

/// inotify(7): notice changes to files and directories.
package enum Inotify {
    /// A new inotify instance, close-on-exec and non-blocking. inotify_init1(2).
    package static func create() throws(SystemError) -> Int32 {
        try SystemCall.run("inotify_init1", "a new inotify instance") { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) }
    }

    /// Watches `path` for the events in `mask`; returns the watch descriptor. inotify_add_watch(2).
    package static func addWatch(_ fd: Int32, path: String, mask: UInt32) throws(SystemError) -> Int32 {
        try SystemCall.run("inotify_add_watch", path) { inotify_add_watch(fd, path, mask) }
    }

    /// Stops a watch; one already gone (its file was deleted) is not an error. inotify_rm_watch(2).
    package static func removeWatch(_ fd: Int32, _ watch: Int32) {
        _ = inotify_rm_watch(fd, watch)
    }
}
