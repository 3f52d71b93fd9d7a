import Foundation
import Glibc
import LinuxSystem

/// Why a request could not be exchanged with the agent; each message says what to do next.
public enum ControlClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No socket file at the path: the agent is not running (or uses another runtime directory).
    case socketMissing(path: String)
    /// The socket file exists but nothing accepts connections on it.
    case notListening(path: String)
    /// The caller may not open the socket.
    case permissionDenied(path: String)
    /// The agent did not answer in time.
    case timedOut(path: String, seconds: Double)
    /// The agent's queue of connections waiting to be accepted stayed full (it is busy).
    case queueFull(path: String, seconds: Double)
    /// The agent closed the connection without answering.
    case closedWithoutAnswer(path: String)
    /// The answer is not a control response.
    case malformedAnswer(path: String, detail: String)
    /// The path does not fit in a Unix socket address.
    case socketPathTooLong(path: String)
    /// The path is empty.
    case socketPathEmpty
    /// Another system call failed.
    case system(SystemError)

    /// A message a person can act on.
    public var description: String {
        switch self {
        case .socketMissing(let path):
            return "cannot reach hotpatch-agent at \(path): no such file — is the service running? (systemctl status hotpatch-agent)"
        case .notListening(let path):
            return "cannot reach hotpatch-agent at \(path): nothing is listening — is the service running? (systemctl status hotpatch-agent)"
        case .permissionDenied(let path):
            return "cannot reach hotpatch-agent at \(path): permission denied — run as a user who may open the socket, or as root"
        case .timedOut(let path, let seconds):
            return "hotpatch-agent at \(path) did not answer within \(Self.format(seconds)) s — is it stuck? (systemctl status hotpatch-agent)"
        case .queueFull(let path, let seconds):
            return "hotpatch-agent at \(path) is busy: its queue of new connections stayed full for \(Self.format(seconds)) s; try again later"
        case .closedWithoutAnswer(let path):
            return "hotpatch-agent at \(path) closed the connection without answering"
        case .malformedAnswer(let path, let detail):
            return "hotpatch-agent at \(path) sent an answer this agentctl cannot read (\(detail)); are agentctl and the agent the same version?"
        case .socketPathTooLong(let path):
            return "cannot reach hotpatch-agent at \(path): the path is \(path.utf8.count) bytes, longer than a Unix socket's \(Self.maximumPathBytes)"
        case .socketPathEmpty:
            return "cannot reach hotpatch-agent: the socket path is empty"
        case .system(let error):
            return "cannot reach hotpatch-agent: \(error)"
        }
    }

    /// The longest socket path `sun_path` holds, without its terminating NUL.
    public static let maximumPathBytes = UnixSocketAddress.maximumPathBytes

    private static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}

/// A client of the agent's control socket: one connection per request, one JSON line each way.
public struct ControlClient: Sendable {
    /// How long `check` may take: the agent answers once a whole cycle is done.
    public static let checkTimeoutSeconds = 120.0
    /// The default time to wait for an answer.
    public static let defaultTimeoutSeconds = 30.0

    /// The socket to connect to.
    public let socketPath: String
    /// How long to wait for the agent to answer.
    public let timeoutSeconds: Double

    /// A client of the agent at `socketPath`, waiting up to `timeoutSeconds` for each answer.
    public init(socketPath: String = ControlProtocol.defaultSocketPath, timeoutSeconds: Double = ControlClient.defaultTimeoutSeconds) {
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
    }

    /// The time to allow for `command`: long for `check`, which waits for a full cycle.
    public static func suggestedTimeoutSeconds(for command: ControlRequest.Command) -> Double {
        command == .check ? checkTimeoutSeconds : defaultTimeoutSeconds
    }

    /// Sends `request` and returns the agent's answer (which may itself be a refusal: see `ok`).
    public func send(_ request: ControlRequest) throws(ControlClientError) -> ControlResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let body = try? encoder.encode(request) else {
            throw .malformedAnswer(path: socketPath, detail: "the request could not be encoded")
        }
        let answer = try exchange(Array(body) + [0x0A])
        do {
            return try JSONDecoder().decode(ControlResponse.self, from: Data(answer))
        } catch {
            throw .malformedAnswer(path: socketPath, detail: Self.summary(of: error))
        }
    }

    /// Sends raw `line` bytes (a newline is not added) and returns the raw answer line, for tests and
    /// diagnostics of the wire protocol.
    public func exchange(_ line: [UInt8]) throws(ControlClientError) -> [UInt8] {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        let socket = try connect()
        defer { Descriptor.close(socket) }
        try sendAll(line, on: socket, deadline: deadline)
        return try receiveLine(on: socket, deadline: deadline)
    }

    private func connect() throws(ControlClientError) -> Int32 {
        guard !socketPath.isEmpty else { throw .socketPathEmpty }
        guard let address = UnixSocketAddress(path: socketPath) else { throw .socketPathTooLong(path: socketPath) }
        let fd: Int32
        do throws(SystemError) { fd = try Socket.unixStream(nonBlocking: false, subject: socketPath) } catch { throw .system(error) }
        // Bounds connect(2) when the agent's backlog is full, and each send(2).
        Socket.setSendTimeout(fd, seconds: timeoutSeconds)
        do throws(SystemError) {
            try Socket.connect(fd, to: address)
            return fd
        } catch {
            Descriptor.close(fd)
            switch error.errno {
            case ENOENT, ENOTDIR: throw .socketMissing(path: socketPath)
            case ECONNREFUSED: throw .notListening(path: socketPath)
            case EACCES, EPERM: throw .permissionDenied(path: socketPath)
            // A Unix socket's connect(2) fails with EAGAIN once SO_SNDTIMEO passes with the listen queue full.
            case EAGAIN: throw .queueFull(path: socketPath, seconds: timeoutSeconds)
            case ETIMEDOUT: throw .timedOut(path: socketPath, seconds: timeoutSeconds)
            default: throw .system(error)
            }
        }
    }

    private func sendAll(_ bytes: [UInt8], on fd: Int32, deadline: ContinuousClock.Instant) throws(ControlClientError) {
        var offset = 0
        while offset < bytes.count {
            let sent: Int?
            do throws(SystemError) {
                sent = try Socket.send(fd, bytes, from: offset, subject: socketPath)
            } catch where error.errno == EPIPE || error.errno == ECONNRESET {
                // The agent stopped reading (e.g. an oversized request) and may have answered why: read it.
                return
            } catch {
                throw .system(error)
            }
            // nil: SO_SNDTIMEO passed with the agent not reading.
            guard let sent else { throw .timedOut(path: socketPath, seconds: timeoutSeconds) }
            offset += sent
        }
    }

    private func receiveLine(on fd: Int32, deadline: ContinuousClock.Instant) throws(ControlClientError) -> [UInt8] {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let newline = received.firstIndex(of: 0x0A) { return Array(received[..<newline]) }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { throw .timedOut(path: socketPath, seconds: timeoutSeconds) }
            let milliseconds = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            do throws(SystemError) {
                guard try Descriptor.waitReadable([fd], timeoutMilliseconds: milliseconds, subject: socketPath)[0] else { continue }
            } catch {
                throw .system(error)
            }
            let count: Int
            do throws(SystemError) {
                guard let read = try Descriptor.read(fd, into: &chunk, subject: socketPath) else { continue }
                count = read
            } catch where error.errno == ECONNRESET {
                // A reset ends the answer as the end of stream does.
                count = 0
            } catch {
                throw .system(error)
            }
            if count > 0 {
                received.append(contentsOf: chunk[..<count])
                continue
            }
            // Any answer already received is complete up to here; otherwise there is none.
            guard !received.isEmpty else { throw .closedWithoutAnswer(path: socketPath) }
            return received
        }
    }

    private static func summary(of error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): return "not JSON: \(context.debugDescription)"
        case DecodingError.keyNotFound(let key, _): return "missing \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "unexpected value at \"\(path)\""
        default: return String(describing: error)
        }
    }
}
