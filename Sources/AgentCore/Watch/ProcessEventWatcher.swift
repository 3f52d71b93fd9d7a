import Glibc
import LinuxSystem
import Synchronization

/// A process event from the kernel's proc connector, for thread-group leaders only.
public enum ProcessEvent: Sendable, Equatable {
    /// Process `pid` called execve: it may now map a patch target.
    case exec(pid: ProcessID)
    /// Process `pid` ended: `exitCode` as for exit(3), and `signal` when a signal killed it.
    case exit(pid: ProcessID, exitCode: Int32, signal: Int32?)
    /// The kernel dropped events (socket buffer overrun): rescan every process.
    case overrun
}

/// How new processes are noticed.
public enum WatchMode: Sendable, Equatable {
    /// Netlink process events arrive as they happen.
    case netlink
    /// Netlink is not available (the reason says why): the caller must scan periodically.
    case scan(reason: String)
}

/// Subscribes to netlink process events (`NETLINK_CONNECTOR`, `CN_IDX_PROC`) and streams exec and
/// exit of processes.
///
/// Subscribing needs `CAP_NET_ADMIN` in the initial user namespace; without it (or without the
/// connector in the kernel) `mode` is `.scan(reason:)` and `events()` finishes at once.
public final class ProcessEventWatcher: Sendable {
    /// Whether events flow, or why the caller must scan instead.
    public let mode: WatchMode
    private let broadcast = Broadcast<ProcessEvent>(bufferingPolicy: .unbounded)
    private let wakeup: WakeupChannel?

    /// Subscribes to process events; never throws, failure is reported through `mode`.
    public convenience init() {
        self.init(netlinkProtocol: ProcConnector.netlinkConnector)
    }

    /// `netlinkProtocol` exists so tests can take the fallback path with a real failing socket(2).
    init(netlinkProtocol: Int32) {
        do throws(SystemError) {
            let socket = try ProcConnector.subscribe(netlinkProtocol: netlinkProtocol)
            let wakeup: WakeupChannel
            do throws(SystemError) { wakeup = try WakeupChannel() } catch {
                ProcConnector.unsubscribe(socket)
                Descriptor.close(socket)
                throw error
            }
            let loop = ProcConnectorLoop(socket: socket, wakeup: wakeup, broadcast: broadcast)
            do throws(SystemError) { try Threads.startDetached { loop.run() } } catch {
                loop.close()
                Descriptor.close(wakeup.write)
                throw error
            }
            self.wakeup = wakeup
            self.mode = .netlink
        } catch {
            self.wakeup = nil
            self.mode = .scan(reason: error.description)
            broadcast.finish()
        }
    }

    /// A stream of every later event; already finished in scan mode or after `stop()`.
    public func events() -> AsyncStream<ProcessEvent> {
        broadcast.makeStream()
    }

    /// Unsubscribes and finishes every stream.
    public func stop() {
        if let wakeup { wakeup.wake() }
    }

    deinit {
        stop()
        if let wakeup { Descriptor.close(wakeup.write) }
    }
}

/// The proc connector's wire format and the subscription handshake.
///
/// Kernel headers are not imported (C types stay out of Swift, and `<linux/cn_proc.h>` does not
/// import cleanly); the layouts are parsed by hand at fixed offsets, in host byte order as netlink is:
///
///     struct nlmsghdr  (16 bytes): u32 len @0, u16 type @4, u16 flags @6, u32 seq @8, u32 pid @12
///     struct cn_msg    (20 bytes, after nlmsghdr): u32 idx @0, u32 val @4, u32 seq @8, u32 ack @12,
///                                  u16 len @16, u16 flags @18, then `len` bytes of data
///     struct proc_event (data):    u32 what @0, u32 cpu @4, u64 timestamp_ns @8, union @16:
///         exec: u32 process_pid @16, u32 process_tgid @20
///         exit: u32 process_pid @16, u32 process_tgid @20, u32 exit_code @24, u32 exit_signal @28
///         ack (what == PROC_EVENT_NONE): u32 err @16
enum ProcConnector {
    static let netlinkConnector: Int32 = 11  // NETLINK_CONNECTOR
    static let idxProc: UInt32 = 1  // CN_IDX_PROC
    static let valProc: UInt32 = 1  // CN_VAL_PROC
    static let mcastListen: UInt32 = 1  // PROC_CN_MCAST_LISTEN
    static let mcastIgnore: UInt32 = 2  // PROC_CN_MCAST_IGNORE
    static let eventNone: UInt32 = 0  // PROC_EVENT_NONE (the subscription's acknowledgement)
    static let eventExec: UInt32 = 0x0000_0002  // PROC_EVENT_EXEC
    static let eventExit: UInt32 = 0x8000_0000  // PROC_EVENT_EXIT
    static let nlmsgError: UInt16 = 2  // NLMSG_ERROR
    static let nlmsgDone: UInt16 = 3  // NLMSG_DONE: the connector's messages carry this type
    static let headerSize = 16 + 20  // nlmsghdr + cn_msg

    /// The `ack` field of a control message, by which its acknowledgement is told from another
    /// listener's.
    struct RequestTag: Equatable {
        var ack: UInt32

        /// A tag no other listener is likely to use.
        static func random() -> RequestTag { RequestTag(ack: .random(in: .min ... .max)) }
    }

    /// One decoded message.
    enum Message: Equatable {
        case event(ProcessEvent)
        /// The kernel's answer to a subscription: 0 or an errno, and the `ack` it carries (the
        /// request's + 1; nil for a netlink error, which is sent to the requester alone).
        case acknowledgement(errno: Int32, ack: UInt32?)

        /// Whether this acknowledges the request tagged `tag`. The proc connector sends its
        /// acknowledgements to every listener, with the request's `ack` + 1 (its `seq` is
        /// overwritten by a per-CPU counter on the way out): a listener that took another's for
        /// its own would believe itself subscribed when the kernel ignored it (as it does for a
        /// process outside the initial PID namespace), and wait for events that never come.
        func acknowledges(_ tag: RequestTag) -> Bool {
            guard case let .acknowledgement(_, ack) = self else { return false }
            guard let ack else { return true }
            return ack == tag.ack &+ 1
        }
    }

    /// Decodes every message in one datagram, skipping threads that are not group leaders,
    /// other event kinds and malformed tails.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> [Message] {
        var messages: [Message] = []
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let type = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
            guard length >= 16, offset + length <= bytes.count else { break }
            defer { offset += (length + 3) & ~3 }  // NLMSG_ALIGN
            if type == nlmsgError, length >= 20 {
                // struct nlmsgerr: int error @16 (negative errno), then the offending header.
                let error = bytes.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self)
                messages.append(.acknowledgement(errno: -error, ack: nil))
                continue
            }
            guard type == nlmsgDone, length >= headerSize + 16 else { continue }
            let idx = bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self)
            let val = bytes.loadUnaligned(fromByteOffset: offset + 20, as: UInt32.self)
            let ack = bytes.loadUnaligned(fromByteOffset: offset + 28, as: UInt32.self)
            let dataLength = Int(bytes.loadUnaligned(fromByteOffset: offset + 32, as: UInt16.self))
            guard idx == idxProc, val == valProc, headerSize + dataLength <= length else { continue }
            let event = offset + headerSize
            let what = bytes.loadUnaligned(fromByteOffset: event, as: UInt32.self)
            func field(_ at: Int) -> UInt32? {
                at + 4 <= dataLength ? bytes.loadUnaligned(fromByteOffset: event + at, as: UInt32.self) : nil
            }
            switch what {
            case eventNone:
                if let err = field(16) {
                    messages.append(.acknowledgement(errno: Int32(bitPattern: err), ack: ack))
                }
            case eventExec:
                guard let pid = field(16), let tgid = field(20), pid == tgid else { continue }
                messages.append(.event(.exec(pid: ProcessID(Int32(bitPattern: pid)))))
            case eventExit:
                guard let pid = field(16), let tgid = field(20), pid == tgid, let status = field(24) else {
                    continue
                }
                messages.append(.event(exitEvent(pid: ProcessID(Int32(bitPattern: pid)), waitStatus: status)))
            default:
                continue
            }
        }
        return messages
    }

    /// `exit_code` is the wait(2) status (`exit_signal` is only what the parent is sent, usually
    /// SIGCHLD): low 7 bits the fatal signal (0x80 is the core-dump flag), bits 8–15 the exit code.
    static func exitEvent(pid: ProcessID, waitStatus: UInt32) -> ProcessEvent {
        let signal = Int32(waitStatus & 0x7f)
        let code = Int32((waitStatus >> 8) & 0xff)
        return .exit(pid: pid, exitCode: signal == 0 ? code : 0, signal: signal == 0 ? nil : signal)
    }

    /// The control message asking the kernel to start (`mcastListen`) or stop sending events.
    static func controlMessage(_ operation: UInt32, tag: RequestTag = RequestTag(ack: 0)) -> [UInt8] {
        var bytes: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        }
        append(UInt32(headerSize + 4))  // nlmsg_len
        append(nlmsgDone)  // nlmsg_type
        append(UInt16(0))  // nlmsg_flags
        append(UInt32(0))  // nlmsg_seq
        append(UInt32(0))  // nlmsg_pid
        append(idxProc)
        append(valProc)
        append(UInt32(0))  // seq
        append(tag.ack)  // ack
        append(UInt16(4))  // len
        append(UInt16(0))  // flags
        append(operation)
        return bytes
    }

    /// Opens, binds and subscribes a socket, then waits for the kernel's acknowledgement, since
    /// a refused subscription (EPERM) is only reported there, not by send(2).
    static func subscribe(netlinkProtocol: Int32) throws(SystemError) -> Int32 {
        let fd = try Socket.netlinkDatagram(protocol: netlinkProtocol, subject: subject)
        do throws(SystemError) {
            // A large buffer makes overruns rare during exec storms (forced as root, else capped).
            Socket.setReceiveBuffer(fd, bytes: 4 << 20)
            try Socket.bindNetlink(fd, groups: idxProc, subject: subject)
            let tag = RequestTag.random()
            let message = controlMessage(mcastListen, tag: tag)
            _ = try Socket.send(fd, message, subject: subject)
            try awaitAcknowledgement(fd, of: tag)
            return fd
        } catch {
            Descriptor.close(fd)
            throw error
        }
    }

    /// How the connector socket is named in errors.
    static let subject = "the netlink proc connector (process events)"

    /// Reads until the subscription's acknowledgement; events and other listeners'
    /// acknowledgements before it are dropped (the caller scans once at start anyway). Outside
    /// the initial PID namespace the kernel ignores the request and no acknowledgement comes.
    private static func awaitAcknowledgement(_ fd: Int32, of tag: RequestTag) throws(SystemError) {
        let deadline = ContinuousClock.now + .seconds(1)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            let milliseconds = Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)
            guard milliseconds > 0, try Descriptor.waitReadable([fd], timeoutMilliseconds: milliseconds, subject: subject)[0] else {
                throw SystemError(
                    call: "subscribe to process events", errno: ETIMEDOUT,
                    subject: subject + " (no acknowledgement; it ignores subscribers outside the initial PID and user namespaces, e.g. in a container)")
            }
            let count: Int
            do throws(SystemError) {
                guard let received = try Socket.receive(fd, into: &buffer, subject: subject) else { continue }
                count = received
            } catch where error.errno == ENOBUFS {
                continue
            }
            let messages = buffer.withUnsafeBytes { parse(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            for case let .acknowledgement(code, _) in messages.filter({ $0.acknowledges(tag) }) {
                guard code == 0 else {
                    throw SystemError(call: "subscribe to process events", errno: code, subject: subject)
                }
                return
            }
        }
    }

    /// Tells the kernel we stop listening: it counts listeners and skips the work when none is left.
    static func unsubscribe(_ fd: Int32) {
        let message = controlMessage(mcastIgnore)
        _ = try? Socket.send(fd, message, flags: Int32(MSG_DONTWAIT), subject: subject)
    }
}

/// The watcher's thread: receives datagrams and fans events out until woken to stop.
private final class ProcConnectorLoop: Sendable {
    let socket: Int32
    let wakeup: WakeupChannel
    let broadcast: Broadcast<ProcessEvent>

    init(socket: Int32, wakeup: WakeupChannel, broadcast: Broadcast<ProcessEvent>) {
        self.socket = socket
        self.wakeup = wakeup
        self.broadcast = broadcast
    }

    /// Closes what the thread owns; the watcher's deinit closes the wake-up's write end (so `stop()`
    /// never writes to a closed descriptor number that may have been reused meanwhile).
    func close() {
        ProcConnector.unsubscribe(socket)
        Descriptor.close(socket)
        Descriptor.close(wakeup.read)
    }

    func run() {
        defer {
            close()
            broadcast.finish()
        }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let ready: [Bool]
            do {
                ready = try Descriptor.waitReadable([socket, wakeup.read], timeoutMilliseconds: -1, subject: ProcConnector.subject)
            } catch {
                return
            }
            if ready[1] { return }
            guard ready[0] else { continue }
            let count: Int
            do throws(SystemError) {
                guard let received = try Socket.receive(socket, into: &buffer, subject: ProcConnector.subject) else { continue }
                count = received
            } catch where error.errno == ENOBUFS {
                // The kernel dropped events because we fell behind: the caller must rescan.
                broadcast.yield(.overrun)
                continue
            } catch {
                return
            }
            let messages = buffer.withUnsafeBytes { ProcConnector.parse(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            for case .event(let event) in messages { broadcast.yield(event) }
        }
    }
}
