import Foundation
import Glibc
import LinuxSystem

/// A shutdown signal every blocking wait of the server also polls: once fired, its read end stays
/// readable, so accept and connection threads all wake and give up at once.
final class ControlStopSignal: Sendable {
    private let channel: WakeupChannel
    /// Polled by waiters.
    var readEnd: Int32 { channel.read }

    /// A fresh, unfired signal.
    init() throws(SystemError) {
        channel = try WakeupChannel()
    }

    /// Wakes every waiter, now and later. Safe to call more than once and from any thread.
    func fire() {
        channel.wake()
    }

    deinit {
        channel.close()
    }
}

/// An accepted connection: owns its descriptor and its place at the gate, both released when the last
/// reference goes, on every path (including connections dropped unserved at shutdown).
final class ControlConnection: Sendable {
    /// The connected, non-blocking socket.
    let descriptor: Int32
    /// Who connected, as the kernel recorded it (nil when it could not tell).
    let peer: PeerCredentials?
    private let gate: ControlConnectionGate?

    /// Takes ownership of `descriptor`; `gate` is left when the connection is released.
    init(descriptor: Int32, peer: PeerCredentials?, gate: ControlConnectionGate?) {
        self.descriptor = descriptor
        self.peer = peer
        self.gate = gate
    }

    deinit {
        Descriptor.close(descriptor)
        gate?.leave(uid: peer?.uid)
    }
}

/// What reading a request line ended with.
enum ControlReadOutcome: Sendable, Equatable {
    /// A line (without its newline).
    case line([UInt8])
    /// More than the maximum bytes without a newline.
    case tooLarge
    /// Nothing complete arrived before the deadline.
    case timedOut
    /// The client closed the connection without sending anything.
    case closed
    /// The server is shutting down.
    case stopped
    /// A system call failed.
    case failed(SystemError)
}

/// Blocking reads and writes with deadlines, run on their own threads so a slow or silent client never
/// occupies the agent's cooperative threads.
enum ControlConnectionIO {
    /// Reads one line of at most `limit` bytes before `timeoutSeconds` pass.
    static func readLine(from fd: Int32, limit: Int, timeoutSeconds: Double, stop: ControlStopSignal) -> ControlReadOutcome {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let newline = received.firstIndex(of: 0x0A) {
                guard newline <= limit else { return .tooLarge }
                var line = Array(received[..<newline])
                if line.last == 0x0D { line.removeLast() }
                return .line(line)
            }
            if received.count > limit { return .tooLarge }
            switch waitUntilReady(fd, events: Int16(POLLIN), deadline: deadline, stop: stop) {
            case .ready: break
            case .timedOut: return .timedOut
            case .stopped: return .stopped
            case .failed(let error): return .failed(error)
            }
            let wanted = min(chunk.count, limit + 1 - received.count)
            let count: Int?
            do throws(SystemError) {
                count = try Descriptor.read(fd, into: &chunk, limit: wanted, subject: "a control connection")
            } catch {
                return .failed(error)
            }
            guard let count else { continue }
            if count == 0 {
                // End of stream: a client may close its write side instead of sending a newline.
                return received.isEmpty ? .closed : .line(received)
            }
            received.append(contentsOf: chunk[..<count])
        }
    }

    /// Writes all of `bytes` before `timeoutSeconds` pass; false when the client went away or stalled.
    @discardableResult
    static func writeAll(_ bytes: [UInt8], to fd: Int32, timeoutSeconds: Double, stop: ControlStopSignal?) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        var offset = 0
        while offset < bytes.count {
            let sent: Int?
            do throws(SystemError) {
                sent = try Socket.send(fd, bytes, from: offset, flags: Int32(MSG_DONTWAIT), subject: "a control connection")
            } catch {
                return false
            }
            if let sent {
                offset += sent
                continue
            }
            guard let stop else { return false }
            guard case .ready = waitUntilReady(fd, events: Int16(POLLOUT), deadline: deadline, stop: stop) else { return false }
        }
        return true
    }

    /// The poll(2) timeout in milliseconds until `deadline`, rounded up (0 once it has passed; -1,
    /// no timeout, when nil).
    static func pollTimeout(until deadline: ContinuousClock.Instant?) -> Int32 {
        guard let deadline else { return -1 }
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { return 0 }
        return Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
    }

    private enum Readiness { case ready, timedOut, stopped, failed(SystemError) }

    private static func waitUntilReady(_ fd: Int32, events: Int16, deadline: ContinuousClock.Instant,
                                       stop: ControlStopSignal) -> Readiness {
        while true {
            let milliseconds = pollTimeout(until: deadline)
            if milliseconds == 0 { return .timedOut }
            let revents: [Int16]
            do {
                revents = try Descriptor.poll([fd, stop.readEnd], events: events, timeoutMilliseconds: milliseconds,
                                              subject: "a control connection")
            } catch {
                return .failed(error)
            }
            if revents[1] != 0 { return .stopped }
            if revents[0] != 0 { return .ready }
        }
    }
}

/// Runs blocking `work` on a thread of its own and resumes the caller with its result, leaving the
/// cooperative thread pool free meanwhile.
func runOnOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.name = "control-socket-io"
        thread.start()
    }
}
