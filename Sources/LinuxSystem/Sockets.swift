import Glibc

/// The credentials of the process at the other end of a Unix socket, as the kernel recorded them when
/// it connected (`SO_PEERCRED`).
public struct PeerCredentials: Sendable, Equatable {
    /// The peer's process id.
    public let pid: ProcessID
    /// The peer's user id.
    public let uid: UInt32
    /// The peer's group id.
    public let gid: UInt32

    /// Credentials as given (tests, and callers that learnt them another way).
    public init(pid: ProcessID, uid: UInt32, gid: UInt32) {
        (self.pid, self.uid, self.gid) = (pid, uid, gid)
    }

    /// Whether the peer runs as root.
    public var isRoot: Bool { uid == 0 }
}

/// A Unix socket address (`struct sockaddr_un`) built from a path that fits in `sun_path`.
package struct UnixSocketAddress: Sendable {
    /// The path as given.
    package let path: String
    private let pathBytes: [UInt8]

    /// `sun_path` holds 108 bytes including the terminating NUL.
    package static let maximumPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Nil when `path` is empty or too long for `sun_path`.
    package init?(path: String) {
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

/// Socket calls: Unix stream sockets (the control socket) and netlink datagrams (the proc
/// connector). Every socket is close-on-exec; `subject` names the socket in errors.
package enum Socket {
    /// A new Unix stream socket. socket(2).
    package static func unixStream(nonBlocking: Bool, subject: @autoclosure () -> String) throws(SystemError) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        return try SystemCall.run("socket", subject()) { socket(AF_UNIX, type, 0) }
    }

    /// A connected pair of Unix stream sockets. socketpair(2).
    package static func unixStreamPair(nonBlocking: Bool, subject: @autoclosure () -> String) throws(SystemError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        try SystemCall.run("socketpair", subject()) { socketpair(AF_UNIX, type, 0, &fds) }
        return (fds[0], fds[1])
    }

    /// Binds `fd` to `address`. bind(2).
    package static func bind(_ fd: Int32, to address: UnixSocketAddress) throws(SystemError) {
        try SystemCall.run("bind", address.path) { address.withSockaddr { Glibc.bind(fd, $0, $1) } }
    }

    /// Connects `fd` to `address`. connect(2).
    package static func connect(_ fd: Int32, to address: UnixSocketAddress) throws(SystemError) {
        try SystemCall.run("connect", address.path) { address.withSockaddr { Glibc.connect(fd, $0, $1) } }
    }

    /// Starts listening on `fd`. listen(2).
    package static func listen(_ fd: Int32, backlog: Int32, subject: @autoclosure () -> String) throws(SystemError) {
        try SystemCall.run("listen", subject()) { Glibc.listen(fd, backlog) }
    }

    /// `accept4(2)` is a GNU extension the Glibc module does not export; it is looked up once.
    private typealias Accept4 = @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32
    private static let accept4Function: Accept4? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "accept4") else { return nil }
        return unsafeBitCast(symbol, to: Accept4.self)
    }()

    /// Accepts one pending connection as a close-on-exec, non-blocking descriptor; nil when none is
    /// pending. accept4(2) (`accept` + `fcntl` where it is missing).
    package static func accept(_ fd: Int32, subject: @autoclosure () -> String) throws(SystemError) -> Int32? {
        do throws(SystemError) {
            if let accept4 = accept4Function {
                return try SystemCall.run("accept4", subject()) {
                    accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
                }
            }
            let connection = try SystemCall.run("accept", subject()) { Glibc.accept(fd, nil, nil) }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
            return connection
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// Sends what fits of `bytes` from `offset` on, without `SIGPIPE` (`flags` are added to
    /// MSG_NOSIGNAL); nil when nothing fits now (EAGAIN on a non-blocking send). send(2).
    package static func send(_ fd: Int32, _ bytes: [UInt8], from offset: Int = 0, flags: Int32 = 0,
                             subject: @autoclosure () -> String) throws(SystemError) -> Int? {
        do throws(SystemError) {
            return try SystemCall.run("send", subject()) {
                bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL) | flags) }
            }
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// Receives one datagram (or what is available of a stream) into `buffer` without waiting;
    /// nil when nothing is there (EAGAIN). recv(2) with MSG_DONTWAIT.
    package static func receive(_ fd: Int32, into buffer: inout [UInt8], subject: @autoclosure () -> String) throws(SystemError) -> Int? {
        do throws(SystemError) {
            return try SystemCall.run("recv", subject()) {
                buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            }
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// The credentials of the peer of a connected Unix socket. The corresponding C call is
    /// `getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred)`.
    package static func peerCredentials(_ fd: Int32, subject: @autoclosure () -> String) throws(SystemError) -> PeerCredentials {
        // `struct ucred` is hidden behind _GNU_SOURCE in the Glibc module; its Linux layout is
        // { pid_t pid; uid_t uid; gid_t gid; }.
        var raw: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: raw))
        try SystemCall.run("getsockopt(SO_PEERCRED)", subject()) { getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &raw, &length) }
        return PeerCredentials(pid: ProcessID(raw.0), uid: raw.1, gid: raw.2)
    }

    /// Bounds every blocking send on `fd` (and, for a Unix socket, connect(2) while the listener's
    /// backlog is full) to `seconds`. setsockopt(SO_SNDTIMEO); a failure leaves sends unbounded.
    package static func setSendTimeout(_ fd: Int32, seconds: Double) {
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A new netlink datagram socket of `netlinkProtocol` (e.g. NETLINK_CONNECTOR). socket(2).
    package static func netlinkDatagram(protocol netlinkProtocol: Int32, subject: @autoclosure () -> String) throws(SystemError) -> Int32 {
        try SystemCall.run("socket", subject()) {
            socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkProtocol)
        }
    }

    /// Asks for a receive buffer of `bytes`: forced past the system's cap when the caller may
    /// (SO_RCVBUFFORCE needs CAP_NET_ADMIN), else as large as the cap allows. setsockopt(2).
    package static func setReceiveBuffer(_ fd: Int32, bytes: Int32) {
        var size = bytes
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(4)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(4))
        }
    }

    /// Binds a netlink socket with a port the kernel assigns, joined to the multicast `groups`.
    /// bind(2) with a `struct sockaddr_nl`.
    package static func bindNetlink(_ fd: Int32, groups: UInt32, subject: @autoclosure () -> String) throws(SystemError) {
        // struct sockaddr_nl: u16 family @0, u16 pad @2, u32 pid @4 (0: kernel assigns),
        // u32 groups @8 (the multicast group bitmask).
        var address = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: UInt16(AF_NETLINK)) { address.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: groups) { address.replaceSubrange(8..<12, with: $0) }
        try SystemCall.run("bind", subject()) {
            address.withUnsafeBytes { Glibc.bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), 12) }
        }
    }
}
