import Architecture
import Engine
import Glibc
import LinuxSystem
import Synchronization

/// A fault the kernel itself reported in its log (`/proc/sys/debug/exception-trace`): a user
/// process took a page fault, a general protection fault or a trap it had no handler for.
///
/// Only the kernel writes such a record: a signal sent with kill(2), tgkill(2) or sigqueue(3)
/// produces none, and userspace can never log at facility 0 (the kernel's). That makes a report a
/// witness a local user cannot forge for a process they cannot trace or write.
public struct KernelFaultReport: Sendable, Equatable {
    /// The mapping that held the faulting instruction, as the kernel names it: the file's base name
    /// (`memfd:NAME` for a memfd), and where the mapping lies.
    public typealias Mapping = KernelFaultLine.Mapping

    /// The record's sequence number in the kernel log.
    public var sequence: UInt64
    /// When the kernel logged it: microseconds since boot on the kernel's log clock, which, like
    /// CLOCK_MONOTONIC, stops while the machine is suspended.
    public var timestampMicroseconds: UInt64
    /// The faulting thread's name (`comm`), as escaped by the kernel.
    public var command: String
    /// The faulting thread's id (equal to the process id only for the main thread).
    public var threadID: ThreadID
    /// What happened: `segfault`, `trap invalid opcode`, `trap divide error`, `general protection fault`, ….
    public var kind: String
    /// The faulting instruction's address.
    public var instructionPointer: UInt64
    /// The file mapping that held the instruction; nil when it was anonymous memory or the kernel
    /// left the part out.
    public var mapping: Mapping?
    /// The thread's process, when it could still be looked up as the record was read.
    public var processID: ProcessID?
}

/// Decodes `/dev/kmsg` records into fault reports.
///
/// A record is `PRI,SEQ,USEC,FLAGS[,…];MESSAGE`, then optional `\n KEY=VALUE` lines; the kernel
/// escapes bytes below 0x20 and above 0x7e in MESSAGE as `\xNN`, so one record is one line. What a
/// fault line says in MESSAGE is the architecture's wording: `HostArchitecture.parseKernelFault`
/// reads it.
public enum KernelFaultRecord {
    /// The facility of records the kernel writes itself; userspace writes get LOG_USER or higher.
    static let kernelFacility = 0

    /// The fault `record` reports, or nil when it is not a kernel fault report (another facility,
    /// another message, a truncated or ambiguous line).
    public static func parse(_ record: String) -> KernelFaultReport? {
        let firstLine = record.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard let semicolon = firstLine.firstIndex(of: ";") else { return nil }
        let fields = firstLine[..<semicolon].split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count >= 4, let priority = Int(fields[0]), priority >= 0, priority >> 3 == kernelFacility,
              let sequence = UInt64(fields[1]), let time = UInt64(fields[2]) else { return nil }
        let message = firstLine[firstLine.index(after: semicolon)...]
        guard let line = HostArchitecture.parseKernelFault(message) else { return nil }
        return KernelFaultReport(sequence: sequence, timestampMicroseconds: time, command: line.command,
                                 threadID: ThreadID(line.thread), kind: line.kind, instructionPointer: line.instructionPointer,
                                 mapping: line.mapping)
    }

    /// Whether `record` may be a fault report at all: the architecture's words are in it.
    static func mayReportFault(_ record: String) -> Bool {
        HostArchitecture.kernelFaultMarkers.contains { record.contains($0) }
    }
}

/// Follows the kernel log (`/dev/kmsg`) from the moment it is opened and keeps the last fault
/// reports, for the agent's health check.
///
/// Reading needs CAP_SYSLOG (or CAP_SYS_ADMIN) where `kernel.dmesg_restrict` is 1; a container
/// often has no `/dev/kmsg`. Then `availability` says why, and the health check does without.
/// A thread follows the log so records are not lost to the ring buffer wrapping; `reports()` also
/// reads what arrived since, so a fault logged just before the process's exit event is never missed.
public final class KernelFaultLog: Sendable {
    /// Whether fault reports can be read, or why not.
    public enum Availability: Sendable, Equatable {
        /// Reports are read.
        case reading
        /// They cannot be (the reason names the failed call and the path).
        case unavailable(reason: String)
    }

    /// How many reports are kept: enough for a burst of crashes, small enough to search at once.
    public static let capacity = 256
    /// The kernel's switch for these reports (`sysctl debug.exception-trace`).
    static let exceptionTraceSwitch = "/proc/sys/debug/exception-trace"

    /// Whether the log could be opened.
    public let availability: Availability
    private let reader: KernelLogReader?
    private let wakeup: WakeupChannel?

    /// Opens `/dev/kmsg` (or `path`, for tests) at its end; never throws, see `availability`.
    public init(path: String = "/dev/kmsg") {
        let fd: Int32
        do throws(SystemError) {
            fd = try Descriptor.open(path, flags: O_RDONLY | O_NONBLOCK)
        } catch {
            availability = .unavailable(reason: error.description)
            reader = nil
            wakeup = nil
            return
        }
        // Only what happens from now on: the agent judges the deaths it sees, not old crashes.
        Descriptor.seekToEnd(fd)
        let reader = KernelLogReader(fd: fd)
        self.reader = reader
        availability = .reading
        // Without the thread, reports() still reads on demand; only a wrapped ring loses records.
        guard let wakeup = try? WakeupChannel() else {
            self.wakeup = nil
            return
        }
        do {
            try Threads.startDetached { reader.follow(wakeup) }
            self.wakeup = wakeup
        } catch {
            wakeup.close()
            self.wakeup = nil
        }
    }

    deinit {
        stop()
        if let wakeup { Descriptor.close(wakeup.write) }
    }

    /// Stops following the log (reports() still reads on demand).
    public func stop() {
        if let wakeup { wakeup.wake() }
    }

    /// Whether the kernel writes fault reports at all now (`debug.exception-trace` is not 0).
    public static var kernelReportsFaults: Bool {
        guard let bytes = try? Files.read(exceptionTraceSwitch, limit: 64) else { return false }
        return String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace) != ["0"]
    }

    /// The recent reports, oldest first, after reading everything logged so far; empty when the
    /// log is unavailable.
    public func reports() -> [KernelFaultReport] {
        reader?.reports() ?? []
    }

}

/// The open log and the window of reports, shared by the following thread and `reports()`.
private final class KernelLogReader: Sendable {
    private struct State {
        var window: [KernelFaultReport] = []
        /// Room for one record: the kernel refuses a read into a smaller buffer (EINVAL).
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    }

    private let fd: Int32
    private let state = Mutex(State())

    init(fd: Int32) { self.fd = fd }

    deinit { Descriptor.close(fd) }

    func reports() -> [KernelFaultReport] {
        state.withLock { state in
            drain(&state)
            return state.window
        }
    }

    /// Reads records as they come until woken through `wakeup`.
    func follow(_ wakeup: WakeupChannel) {
        defer { Descriptor.close(wakeup.read) }
        while true {
            let ready: [Bool]
            do { ready = try Descriptor.waitReadable([fd, wakeup.read], timeoutMilliseconds: -1, subject: "the kernel log") } catch { return }
            if ready[1] { return }
            if ready[0] { state.withLock { drain(&$0) } }
        }
    }

    /// Reads every record available now (one record per read).
    private func drain(_ state: inout State) {
        while true {
            let count: Int
            do throws(SystemError) {
                // nil (EAGAIN): nothing more now.
                guard let read = try Descriptor.read(fd, into: &state.buffer, subject: "the kernel log"), read > 0 else { return }
                count = read
            } catch where error.errno == EPIPE {
                // Records were overwritten before we read them; the next read goes on after the gap.
                continue
            } catch {
                // Anything else: give up until the next call.
                return
            }
            let record = String(decoding: state.buffer[0..<count], as: UTF8.self)
            // Cheap filter first: almost no record is a fault report.
            guard KernelFaultRecord.mayReportFault(record), var report = KernelFaultRecord.parse(record) else { continue }
            // The thread may already be gone (its process exited at the fault): then nil.
            report.processID = try? ProcFS.process(ofThread: report.threadID)
            state.window.append(report)
            if state.window.count > KernelFaultLog.capacity {
                state.window.removeFirst(state.window.count - KernelFaultLog.capacity)
            }
        }
    }
}
