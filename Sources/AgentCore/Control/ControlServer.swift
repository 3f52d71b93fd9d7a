import AgentProtocol
import Foundation
import Glibc
import LinuxSystem
import Logging
import ServiceLifecycle

/// Why the control server could not start.
public enum ControlServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path does not fit in a Unix socket address.
    case socketPathTooLong(path: String)
    /// Another process (another agent) answers on the socket.
    case alreadyListening(path: String)
    /// Something that is not a socket sits at the path; it is left alone.
    case notASocket(path: String)
    /// A system call failed while setting up the socket.
    case systemCall(SystemError, path: String)

    /// A message a person can act on.
    public var description: String {
        switch self {
        case .socketPathTooLong(let path):
            return "Failed to open the control socket \(path): the path is longer than \(UnixSocketAddress.maximumPathBytes) bytes"
        case .alreadyListening(let path):
            return "Failed to open the control socket \(path): another hotpatch-agent is already listening on it (stop it first: systemctl stop hotpatch-agent)"
        case .notASocket(let path):
            return "Failed to open the control socket \(path): a file that is not a socket is in the way; refusing to remove it"
        case .systemCall(let error, let path):
            return "Failed to open the control socket \(path): \(error)"
        }
    }
}

/// The agent's control socket: a Unix stream socket where `agentctl` sends one JSON request per
/// connection and reads one JSON answer. Anyone may read; only root may change anything (`SO_PEERCRED`).
public final class ControlServer: Service, Sendable {
    /// Where the socket is bound.
    public let socketPath: String
    private let dispatcher: ControlDispatcher
    private let logger: Logger
    /// Connections at once, per user and kept for root; the request timeout.
    public let limits: ControlLimits
    private var requestTimeoutSeconds: Double { limits.requestTimeoutSeconds }

    private let connectionRefusals: ControlRefusalLog
    private let privilegedRefusals: ControlRefusalLog

    /// A server on `socketPath` forwarding to `handler`, with `limits` (the protocol's by default).
    public init(socketPath: String, handler: any AgentControlHandler, logger: Logger, limits: ControlLimits = ControlLimits()) {
        self.socketPath = socketPath
        self.logger = logger
        self.limits = limits
        connectionRefusals = ControlRefusalLog(
            interval: limits.refusalReportInterval, logger: logger, message: "Refused control connections: too many open at once",
            metadata: ["control.limit": "\(limits.maximumConnections)", "control.limit.per-user": "\(limits.maximumConnectionsPerUser)",
                       "control.limit.reserved-for-root": "\(limits.reservedForRoot)"])
        privilegedRefusals = ControlRefusalLog(
            interval: limits.refusalReportInterval, logger: logger, message: "Refused privileged control requests from unprivileged peers")
        dispatcher = ControlDispatcher(handler: handler, logger: logger, privilegedRefusals: privilegedRefusals)
    }

    /// A server with a total cap and request timeout of its own, other limits by default (tests).
    public convenience init(socketPath: String, handler: any AgentControlHandler, logger: Logger,
                            maximumConnections: Int, requestTimeoutSeconds: Double) {
        self.init(socketPath: socketPath, handler: handler, logger: logger,
                  limits: ControlLimits(maximumConnections: maximumConnections, requestTimeoutSeconds: requestTimeoutSeconds))
    }

    /// Binds the socket (replacing a stale one, refusing if another agent listens), serves connections
    /// concurrently until cancelled or shut down gracefully, then closes and unlinks the socket.
    public func run() async throws {
        let listener = try ControlListener(path: socketPath)
        let stop: ControlStopSignal
        do throws(SystemError) {
            stop = try ControlStopSignal()
        } catch {
            listener.close()
            throw ControlServerError.systemCall(error, path: socketPath)
        }
        defer { listener.close() }
        logger.info("Control socket listening", metadata: ["control.socket": "\(socketPath)"])

        let gate = ControlConnectionGate(limits: limits)
        let (connections, continuation) = AsyncStream.makeStream(of: ControlConnection.self)
        let logger = self.logger
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        await runOnOwnThread {
                            Self.acceptLoop(listener: listener.descriptor, gate: gate, stop: stop, logger: logger,
                                            connectionRefusals: self.connectionRefusals, privilegedRefusals: self.privilegedRefusals) {
                                continuation.yield($0)
                            }
                            continuation.finish()
                        }
                    }
                    for await connection in connections {
                        group.addTask { await self.serve(connection, stop: stop) }
                    }
                    // Cancellation can end the iteration before the accept thread notices: make sure it stops.
                    stop.fire()
                }
            } onCancel: {
                stop.fire()
            }
        } onGracefulShutdown: {
            stop.fire()
        }
        logger.info("Control socket closed", metadata: ["control.socket": "\(socketPath)"])
    }

    /// Accepts connections on a thread of its own until `stop` fires, handing each admitted one to
    /// `deliver` and answering those beyond the gate's limits "agent busy" at once. It also wakes
    /// when a summary of refusals (connections, or privileged requests) is due, and logs what is
    /// still counted on stop.
    private static func acceptLoop(listener: Int32, gate: ControlConnectionGate, stop: ControlStopSignal, logger: Logger,
                                   connectionRefusals: ControlRefusalLog, privilegedRefusals: ControlRefusalLog,
                                   deliver: (ControlConnection) -> Void) {
        let refusals = [connectionRefusals, privilegedRefusals]
        defer { refusals.forEach { $0.flush() } }
        while true {
            let revents: [Int16]
            do {
                let nextReport = refusals.compactMap(\.nextReport).min()
                revents = try Descriptor.poll([listener, stop.readEnd], events: Int16(POLLIN),
                                              timeoutMilliseconds: ControlConnectionIO.pollTimeout(until: nextReport),
                                              subject: "the control socket")
            } catch {
                logger.error("Failed to wait for control connections, stopping the control socket", metadata: ["control.error": "\(error)"])
                return
            }
            if revents[1] != 0 { return }
            refusals.forEach { $0.reportIfDue() }
            while true {
                let descriptor: Int32?
                do throws(SystemError) {
                    descriptor = try Socket.accept(listener, subject: "the control socket")
                } catch where error.errno == ECONNABORTED {
                    continue
                } catch {
                    // Out of descriptors or memory: pause instead of spinning on a listener that stays readable.
                    logger.warning("Failed to accept a control connection, retrying shortly", metadata: ["control.error": "\(error)"])
                    usleep(100_000)
                    break
                }
                guard let descriptor else { break }
                let peer = try? Socket.peerCredentials(descriptor, subject: "a control connection")
                guard let refusal = gate.enter(uid: peer?.uid) else {
                    deliver(ControlConnection(descriptor: descriptor, peer: peer, gate: gate))
                    continue
                }
                let refused = ControlConnection(descriptor: descriptor, peer: peer, gate: nil)
                let answer = ControlResponse.busy(refusal.description)
                ControlConnectionIO.writeAll(ControlResponseEncoding.line(answer), to: refused.descriptor, timeoutSeconds: 0, stop: nil)
                connectionRefusals.record(uid: peer?.uid, details: ["control.peer.pid": "\(peer?.pid.rawValue ?? -1)"])
            }
        }
    }

    /// Reads one request, answers it, and lets the connection close.
    private func serve(_ connection: ControlConnection, stop: ControlStopSignal) async {
        defer { IdleMemoryRelease.shared.noteActivity() }
        let peer = connection.peer
        let limit = ControlProtocol.maximumRequestBytes
        let timeout = requestTimeoutSeconds
        let outcome = await runOnOwnThread {
            ControlConnectionIO.readLine(from: connection.descriptor, limit: limit, timeoutSeconds: timeout, stop: stop)
        }
        let response: ControlResponse
        switch outcome {
        case .line(let line):
            response = await dispatcher.respond(toLine: line, peer: peer)
        case .tooLarge:
            logger.debug("Refused oversized control request", metadata: ["control.peer.pid": "\(peer?.pid.rawValue ?? -1)"])
            response = ControlResponse(ok: false, error: ControlRequestProblem.tooLarge.description)
        case .timedOut:
            logger.debug("Dropped a silent control client", metadata: ["control.peer.pid": "\(peer?.pid.rawValue ?? -1)"])
            let answer = ControlResponse(ok: false, error: "no request within \(timeout) seconds")
            ControlConnectionIO.writeAll(ControlResponseEncoding.line(answer), to: connection.descriptor, timeoutSeconds: 0, stop: nil)
            return
        case .closed, .stopped, .failed:
            return
        }
        let bytes = ControlResponseEncoding.line(response)
        _ = await runOnOwnThread {
            ControlConnectionIO.writeAll(bytes, to: connection.descriptor, timeoutSeconds: timeout, stop: stop)
        }
    }
}

/// How answers go on the wire: one compact JSON object with sorted keys, then a newline.
enum ControlResponseEncoding {
    /// The bytes of `response` as one line.
    static func line(_ response: ControlResponse) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(response) else {
            return Array("{\"error\":\"internal error: the answer could not be encoded\",\"ok\":false}\n".utf8)
        }
        return Array(data) + [0x0A]
    }
}

/// The bound, listening socket file, which it removes on close if it is still the one it bound.
final class ControlListener: Sendable {
    /// The listening descriptor.
    let descriptor: Int32
    private let path: String
    private let identity: (device: UInt64, inode: UInt64)

    /// Binds and listens on `path`, mode 0666; a stale socket nobody listens on is replaced.
    init(path: String) throws(ControlServerError) {
        guard let address = UnixSocketAddress(path: path) else { throw .socketPathTooLong(path: path) }
        try Self.removeStaleSocket(at: address)
        do throws(SystemError) {
            let fd = try Socket.unixStream(nonBlocking: true, subject: path)
            do throws(SystemError) {
                try Socket.bind(fd, to: address)
                // Any local user may read status; authorisation is per request, by SO_PEERCRED.
                try Files.setMode(path, 0o666)
                try Socket.listen(fd, backlog: 64, subject: path)
                let bound = try Files.linkStatus(path)
                descriptor = fd
                identity = (UInt64(bound.st_dev), UInt64(bound.st_ino))
                self.path = path
            } catch {
                Descriptor.close(fd)
                throw error
            }
        } catch {
            throw .systemCall(error, path: path)
        }
    }

    /// Closes the socket and unlinks its file, unless another server has replaced it meanwhile.
    func close() {
        Descriptor.close(descriptor)
        if let now = try? Files.linkStatus(path), UInt64(now.st_dev) == identity.device, UInt64(now.st_ino) == identity.inode {
            try? Files.remove(path)
        }
    }

    /// Removes a socket file nobody listens on; refuses to touch anything else.
    private static func removeStaleSocket(at address: UnixSocketAddress) throws(ControlServerError) {
        let existing: stat?
        do throws(SystemError) { existing = try Files.linkStatusIfPresent(address.path) } catch { throw .systemCall(error, path: address.path) }
        guard let existing else { return }
        guard existing.st_mode & S_IFMT == S_IFSOCK else { throw .notASocket(path: address.path) }
        do throws(SystemError) {
            let probe = try Socket.unixStream(nonBlocking: true, subject: address.path)
            defer { Descriptor.close(probe) }
            do throws(SystemError) {
                try Socket.connect(probe, to: address)
            } catch where error.errno == ECONNREFUSED {
                try Files.remove(address.path)
                return
            } catch where error.errno == EAGAIN {
                // A full backlog: somebody is listening.
            }
        } catch {
            throw .systemCall(error, path: address.path)
        }
        throw .alreadyListening(path: address.path)
    }
}
