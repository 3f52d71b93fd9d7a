import AgentCore
import AgentProtocol
import Foundation
import Glibc
import LinuxSystem
import Logging
import Testing

/// Stands for the agent behind the socket: records each call and answers with canned values.
actor RecordingHandler: AgentControlHandler {
    /// The calls received, e.g. "status", "apply:ID".
    private(set) var calls: [String] = []
    /// The status returned by `status` and `checkNow`.
    var cannedStatus: AgentStatus
    /// When set, the changing calls throw it.
    var failure: TestHandlerFailure?

    init(status: AgentStatus = .sample(verdict: .upToDate), failure: TestHandlerFailure? = nil) {
        self.cannedStatus = status
        self.failure = failure
    }

    func status() async -> AgentStatus { calls.append("status"); return cannedStatus }
    func processes() async -> [ProcessEntry] { calls.append("processes"); return .sample }
    func history() async -> [HistoryEntry] { calls.append("history"); return .sample }
    func checkNow() async -> AgentStatus { calls.append("check"); return cannedStatus }
    func apply(id: String) async throws -> String { try record("apply:\(id)"); return "applied \(id) in 3 processes" }
    func revert(id: String) async throws -> String { try record("revert:\(id)"); return "reverted \(id) and holding it" }
    func enroll() async throws -> String { try record("enroll"); return "enrolled" }
    func unenroll() async throws -> String { try record("unenroll"); return "unenrolled" }

    private func record(_ call: String) throws {
        calls.append(call)
        if let failure { throw failure }
    }
}

/// A handler failure with a readable description.
struct TestHandlerFailure: Error, CustomStringConvertible {
    let description: String
}

extension AgentStatus {
    /// A status with every section filled, and the given verdict.
    static func sample(verdict: Verdict) -> AgentStatus {
        AgentStatus(
            verdict: verdict,
            reasons: verdict == .upToDate ? [] : [Reason(verdict: verdict, message: "sample reason for \(verdict.rawValue)")],
            baseline: Baseline(active: "deb12-2024.05"),
            hotpatch: HotpatchInForce(id: "openssl-2024-05", level: 2, cves: ["CVE-2024-0001", "CVE-2024-0002"]),
            processes: ProcessCounts(patched: 3, pending: 1, unpatchable: 0),
            reboot: Reboot(required: verdict == .rebootRequired, reasons: verdict == .rebootRequired ? ["baseline deb12-2024.06 installed"] : []),
            channel: Channel(version: 7, lastCheck: "2024-05-01T10:00:00Z", error: nil, path: "/srv/channel"),
            enrolled: verdict != .unenrolled,
            processWatch: "netlink",
            mappingWatch: "fanotify",
            lastPauseUsec: 420,
            agentVersion: "0.1.0"
        )
    }
}

extension [ProcessEntry] {
    /// Two processes, one patched and one unpatchable.
    static var sample: [ProcessEntry] {
        [ProcessEntry(pid: 1234, executable: "/usr/sbin/nginx", state: .patched, pauseUsec: 310, hotpatch: "openssl-2024-05"),
         ProcessEntry(pid: 99, executable: "/usr/bin/legacy", state: .unpatchable, reason: "seccomp denies ptrace")]
    }
}

extension [HistoryEntry] {
    /// One applied event.
    static var sample: [HistoryEntry] {
        [HistoryEntry(time: "2024-05-01T10:00:01Z", event: "applied", release: "openssl-2024-05", message: "applied level 2 in 3 processes")]
    }
}

/// A logger that drops everything.
let quietLogger = Logger(label: "control-test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A control server running in a task, stopped by `stop()`.
struct RunningServer {
    let server: ControlServer
    let task: Task<Void, any Error>

    /// Starts a server on `path` and waits until it accepts connections.
    static func start(at path: String, handler: any AgentControlHandler, logger: Logger = quietLogger,
                      maximumConnections: Int = 32, requestTimeoutSeconds: Double = 5) async throws -> RunningServer {
        let server = ControlServer(socketPath: path, handler: handler, logger: logger,
                                   maximumConnections: maximumConnections, requestTimeoutSeconds: requestTimeoutSeconds)
        let task = Task { try await server.run() }
        try await waitUntilListening(path)
        return RunningServer(server: server, task: task)
    }

    /// Cancels the server and waits for it to finish.
    func stop() async throws {
        task.cancel()
        try await task.value
    }
}

/// Waits up to 5 s until something accepts connections at `path`.
func waitUntilListening(_ path: String) async throws {
    for _ in 0..<500 {
        if let socket = try? RawSocket(connectingTo: path) {
            socket.close()
            return
        }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw FixtureError.setUp("nothing listens at \(path)")
}

/// A client socket under the test's full control: send part of a request, stay silent, read what comes.
final class RawSocket: @unchecked Sendable {
    let fd: Int32

    init(connectingTo path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if result != 0 {
            let code = errno
            Glibc.close(fd)
            throw FixtureError.setUp(SystemError(call: "connect", errno: code, subject: path).description)
        }
    }

    /// Sends all of `bytes` (ignoring a closed peer).
    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    /// Sends `text`.
    func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads until end of stream or `seconds` pass, on a thread of its own.
    func readToEnd(within seconds: Double) async -> (text: String, ended: Bool) {
        await blocking { self.readToEndBlocking(within: seconds) }
    }

    /// Reads until end of stream or `seconds` pass; returns what came and whether the stream ended.
    func readToEndBlocking(within seconds: Double) -> (text: String, ended: Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 20) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received.append(contentsOf: buffer[..<count])
        }
        return (String(decoding: received, as: UTF8.self), false)
    }

    func close() { Glibc.close(fd) }
}

/// Decodes the first line of `text` as a control response.
func decodeResponse(_ text: String) throws -> ControlResponse {
    let line = text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
    return try JSONDecoder().decode(ControlResponse.self, from: Data(line.utf8))
}

/// Creates a socket file at `path` that nobody listens on, as a crashed agent leaves behind.
func makeStaleSocket(at path: String) {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    Glibc.close(fd)
}

/// Runs the built `agentctl` with `arguments`, as root or (through setpriv) as uid/gid 65534.
func runAgentctl(_ arguments: [String], asNobody: Bool = false) async throws -> ProgramRun {
    if asNobody {
        return try await Program.run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Products.agentctl] + arguments)
    }
    return try await Program.run(Products.agentctl, arguments)
}

extension TemporaryDirectory {
    /// The control socket path inside it.
    var socketPath: String { path + "/control.sock" }
}

/// Sends `request` with a `ControlClient` on a thread of its own.
func send(_ request: ControlRequest, to path: String, timeoutSeconds: Double = 10) async throws -> ControlResponse {
    try await blocking { Result { try ControlClient(socketPath: path, timeoutSeconds: timeoutSeconds).send(request) } }.get()
}

/// Sends a raw line with a `ControlClient` on a thread of its own and decodes the answer.
func exchange(_ line: String, with path: String) async throws -> ControlResponse {
    let answer = try await blocking { Result { try ControlClient(socketPath: path, timeoutSeconds: 10).exchange(Array(line.utf8)) } }.get()
    return try JSONDecoder().decode(ControlResponse.self, from: Data(answer))
}
