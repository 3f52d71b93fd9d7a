import Glibc

/// A failed system call made by the control socket: which call and its errno.
public struct ControlSystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The C function that failed (`bind`, `accept4`, …).
    public let call: String
    /// The errno it left.
    public let errno: Int32

    /// "bind: Address already in use".
    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// The credentials of the process at the other end of a Unix socket, as the kernel recorded them when
/// it connected (`SO_PEERCRED`).
public struct PeerCredentials: Sendable, Equatable {
    /// The peer's process id.
    public let pid: Int32
    /// The peer's user id.
    public let uid: UInt32
    /// The peer's group id.
    public let gid: UInt32

    /// Credentials as given (tests, and callers that learnt them another way).
    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// Whether the peer runs as root, the only user allowed to change anything.
    public var isRoot: Bool { uid == 0 }
}

/// The one place the control socket calls libc: every call retries `EINTR` and turns `-1`/errno into a
/// `ControlSystemCallError` at once. Descriptors are plain `Int32` only inside this folder.
enum ControlSystemCalls {
    /// Runs `body` until it does not fail with `EINTR`; `-1` becomes a typed error.
    @discardableResult
    static func retryingInterrupts(_ call: String, _ body: () -> Int32) throws -> Int32 {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw ControlSystemCallError(call: call, errno: code)
        }
    }

    /// Same as `retryingInterrupts` for calls returning `ssize_t`.
    static func retryingInterrupts(_ call: String, _ body: () -> Int) throws -> Int {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw ControlSystemCallError(call: call, errno: code)
        }
    }

    /// A new Unix stream socket, close-on-exec and non-blocking. The corresponding C function is `socket(2)`.
    static func unixStreamSocket() throws -> Int32 {
        try retryingInterrupts("socket") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
    }

    /// A connected pair of Unix sockets, close-on-exec. The corresponding C function is `socketpair(2)`.
    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        try retryingInterrupts("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return (fds[0], fds[1])
    }

    /// Binds `fd` to `address`. The corresponding C function is `bind(2)`.
    static func bind(_ fd: Int32, to address: UnixSocketAddress) throws {
        try retryingInterrupts("bind") {
            address.withSockaddr { Glibc.bind(fd, $0, $1) }
        }
    }

    /// Connects `fd` to `address`. The corresponding C function is `connect(2)`.
    static func connect(_ fd: Int32, to address: UnixSocketAddress) throws {
        try retryingInterrupts("connect") {
            address.withSockaddr { Glibc.connect(fd, $0, $1) }
        }
    }

    /// Starts listening on `fd`. The corresponding C function is `listen(2)`.
    static func listen(_ fd: Int32, backlog: Int32) throws {
        try retryingInterrupts("listen") { Glibc.listen(fd, backlog) }
    }

    /// `accept4(2)` is a GNU extension the Glibc module does not export; it is looked up once.
    private typealias Accept4 = @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32
    private static let accept4Function: Accept4? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "accept4") else { return nil }
        return unsafeBitCast(symbol, to: Accept4.self)
    }()

    /// Accepts one pending connection as a close-on-exec, non-blocking descriptor; nil when none is
    /// pending. The corresponding C function is `accept4(2)` (`accept` + `fcntl` where it is missing).
    static func accept(_ fd: Int32) throws -> Int32? {
        do {
            if let accept4 = accept4Function {
                return try retryingInterrupts("accept4") {
                    accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
                }
            }
            let connection = try retryingInterrupts("accept") { Glibc.accept(fd, nil, nil) }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
            return connection
        } catch let error as ControlSystemCallError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// Waits until one of `descriptors` is ready for `events` or `timeoutMilliseconds` pass (-1: forever);
    /// returns the `revents` of each. The corresponding C function is `poll(2)`.
    static func poll(_ descriptors: [Int32], events: Int16, timeoutMilliseconds: Int32) throws -> [Int16] {
        var fds = descriptors.map { pollfd(fd: $0, events: events, revents: 0) }
        try retryingInterrupts("poll") { Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds) }
        return fds.map(\.revents)
    }

    /// Reads what is available into `buffer`; nil when nothing is (EAGAIN), 0 at end of stream.
    /// The corresponding C function is `read(2)`.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        do {
            return try retryingInterrupts("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        } catch let error as ControlSystemCallError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// Sends what fits without blocking and without `SIGPIPE`; nil when nothing fits now (EAGAIN).
    /// The corresponding C function is `send(2)` with `MSG_NOSIGNAL | MSG_DONTWAIT`.
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws -> Int? {
        do {
            return try retryingInterrupts("send") {
                Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
        } catch let error as ControlSystemCallError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// The credentials of the peer of a connected Unix socket. The corresponding C call is
    /// `getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred)`.
    static func peerCredentials(_ fd: Int32) throws -> PeerCredentials {
        // `struct ucred` is hidden behind _GNU_SOURCE in the Glibc module; its Linux layout is
        // { pid_t pid; uid_t uid; gid_t gid; }.
        var raw: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: raw))
        try retryingInterrupts("getsockopt(SO_PEERCRED)") {
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &raw, &length)
        }
        return PeerCredentials(pid: raw.0, uid: raw.1, gid: raw.2)
    }

    /// Closes `fd`, ignoring errors (nothing useful can be done about them). The corresponding C function
    /// is `close(2)`; `EINTR` is not retried on Linux, where the descriptor is gone anyway.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// The device and inode of the file at `path` and whether it is a socket; nil when there is none.
    /// The corresponding C function is `lstat(2)`.
    static func identity(ofFileAt path: String) throws -> (device: UInt64, inode: UInt64, isSocket: Bool)? {
        var info = stat()
        do {
            try retryingInterrupts("lstat") { lstat(path, &info) }
        } catch let error as ControlSystemCallError where error.errno == ENOENT {
            return nil
        }
        return (UInt64(info.st_dev), UInt64(info.st_ino), (info.st_mode & S_IFMT) == S_IFSOCK)
    }

    /// Removes the file at `path`. The corresponding C function is `unlink(2)`.
    static func unlink(_ path: String) throws {
        try retryingInterrupts("unlink") { Glibc.unlink(path) }
    }

    /// Sets the permission bits of `path`. The corresponding C function is `chmod(2)`.
    static func chmod(_ path: String, _ mode: mode_t) throws {
        try retryingInterrupts("chmod") { Glibc.chmod(path, mode) }
    }
}

/// A Unix socket address (`struct sockaddr_un`) built from a path that fits in `sun_path`.
struct UnixSocketAddress: Sendable {
    /// The path as given.
    let path: String
    private let pathBytes: [UInt8]

    /// `sun_path` holds 108 bytes including the terminating NUL.
    static let maximumPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Nil when `path` is empty or too long for `sun_path`.
    init?(path: String) {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.maximumPathBytes else { return nil }
        self.path = path
        self.pathBytes = bytes
    }

    /// Calls `body` with a `sockaddr` pointer and its length.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
