import Foundation
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
    public struct Mapping: Sendable, Equatable {
        /// The mapped file's name (no directory).
        public var name: String
        /// The mapping's first address.
        public var start: UInt64
        /// The mapping's length in bytes.
        public var size: UInt64
    }

    /// The record's sequence number in the kernel log.
    public var sequence: UInt64
    /// When the kernel logged it: microseconds since boot on the kernel's log clock, which, like
    /// CLOCK_MONOTONIC, stops while the machine is suspended.
    public var timestampMicroseconds: UInt64
    /// The faulting thread's name (`comm`), as escaped by the kernel.
    public var command: String
    /// The faulting thread's id (equal to the process id only for the main thread).
    public var threadID: Int32
    /// What happened: `segfault`, `trap invalid opcode`, `trap divide error`, `general protection fault`, ….
    public var kind: String
    /// The faulting instruction's address.
    public var instructionPointer: UInt64
    /// The file mapping that held the instruction; nil when it was anonymous memory or the kernel
    /// left the part out.
    public var mapping: Mapping?
    /// The thread's process, when it could still be looked up as the record was read.
    public var processID: Int32?
}

/// Decodes `/dev/kmsg` records into fault reports.
///
/// A record is `PRI,SEQ,USEC,FLAGS[,…];MESSAGE`, then optional `\n KEY=VALUE` lines; the kernel
/// escapes bytes below 0x20 and above 0x7e in MESSAGE as `\xNN`, so one record is one line. The two
/// formats read here (arch/x86/mm/fault.c `show_signal_msg`, arch/x86/kernel/traps.c `show_signal`):
///
///     COMM[TID]: segfault at ADDR ip IP sp SP error CODE[ in NAME[OFFSET,START+SIZE]][ likely on CPU …]
///     traps: COMM[TID] DESCRIPTION ip:IP sp:SP error:CODE[ in NAME[OFFSET,START+SIZE]]
///
/// (older kernels print `NAME[START+SIZE]`). COMM and NAME are chosen by whoever runs the faulting
/// program, so a line that could be read two ways is refused rather than guessed.
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
        var report = message.hasPrefix("traps: ") ? parseTrap(message.dropFirst("traps: ".count)) : parseSegfault(message)
        report?.sequence = sequence
        report?.timestampMicroseconds = time
        return report
    }

    /// `COMM[TID]: segfault at ADDR ip IP sp SP error CODE` and the tail.
    private static func parseSegfault(_ message: Substring) -> KernelFaultReport? {
        let anchor = "]: segfault at "
        let occurrences = message.ranges(of: anchor)
        // A second anchor can only come from a name someone chose: refuse to pick one.
        guard occurrences.count == 1, let anchorRange = occurrences.first,
              let (command, tid) = commandAndThread(message[..<anchorRange.lowerBound]) else { return nil }
        var scanner = FieldScanner(message[anchorRange.upperBound...])
        guard scanner.hex() != nil, scanner.literal(" ip "), let ip = scanner.hex(), scanner.literal(" sp "),
              scanner.hex() != nil, scanner.literal(" error "), scanner.hex() != nil,
              let tail = parseTail(scanner.rest, cpuSuffixAllowed: true) else { return nil }
        return KernelFaultReport(sequence: 0, timestampMicroseconds: 0, command: command, threadID: tid, kind: "segfault",
                                 instructionPointer: ip, mapping: tail.mapping)
    }

    /// `COMM[TID] DESCRIPTION ip:IP sp:SP error:CODE` and the tail (after `traps: `).
    private static func parseTrap(_ message: Substring) -> KernelFaultReport? {
        guard let ipRange = message.firstRange(of: " ip:") else { return nil }
        let head = message[..<ipRange.lowerBound]
        // The thread is the one `[digits] ` in the head; two mean a crafted name.
        let candidates = head.indices.filter { head[$0] == "[" && threadNumber(at: $0, in: head) != nil }
        guard candidates.count == 1, let open = candidates.first,
              let (tid, afterThread) = threadNumber(at: open, in: head) else { return nil }
        let kind = head[afterThread...]
        guard kind.hasPrefix("trap ") || kind.hasPrefix("general protection") else { return nil }
        var scanner = FieldScanner(message[ipRange.upperBound...])
        guard let ip = scanner.hex(), scanner.literal(" sp:"), scanner.hex() != nil, scanner.literal(" error:"),
              scanner.hex() != nil, let tail = parseTail(scanner.rest, cpuSuffixAllowed: false) else { return nil }
        return KernelFaultReport(sequence: 0, timestampMicroseconds: 0, command: String(head[..<open]), threadID: tid, kind: String(kind),
                                 instructionPointer: ip, mapping: tail.mapping)
    }

    /// `COMM[TID` followed by `]`: splits `text` (which ends just before that `]`) into name and id.
    private static func commandAndThread(_ text: Substring) -> (String, Int32)? {
        guard let open = text.lastIndex(of: "["),
              let tid = Int32(text[text.index(after: open)...]), tid > 0 else { return nil }
        return (String(text[..<open]), tid)
    }

    /// At `open` (a `[`) in `head`: `[DIGITS] ` → the number and the index after the space.
    private static func threadNumber(at open: Substring.Index, in head: Substring) -> (Int32, Substring.Index)? {
        let digits = head[head.index(after: open)...].prefix(while: \.isASCIIDigit)
        guard !digits.isEmpty, let tid = Int32(digits), tid > 0 else { return nil }
        let rest = head[digits.endIndex...]
        guard rest.hasPrefix("] ") else { return nil }
        return (tid, rest.index(rest.startIndex, offsetBy: 2))
    }

    /// What follows the registers in a well-formed line.
    private enum Tail {
        case bare
        case mapping(KernelFaultReport.Mapping)

        var mapping: KernelFaultReport.Mapping? {
            if case let .mapping(mapping) = self { mapping } else { nil }
        }
    }

    /// What may follow the registers: nothing, ` in NAME[…]`, and for segfaults ` likely on CPU …`.
    /// Returns nil for anything else (the line is not one the kernel printed, or was cut).
    private static func parseTail(_ tail: Substring, cpuSuffixAllowed: Bool) -> Tail? {
        var tail = tail
        if cpuSuffixAllowed, let cpu = tail.ranges(of: " likely on CPU ").last {
            guard isCPUSuffix(tail[cpu.upperBound...]) else { return nil }
            tail = tail[..<cpu.lowerBound]
        }
        if tail.isEmpty { return .bare }
        guard tail.hasPrefix(" in "), tail.hasSuffix("]"), let open = tail.lastIndex(of: "[") else { return nil }
        let name = tail[tail.index(tail.startIndex, offsetBy: 4)..<open]
        let inside = tail[tail.index(after: open)..<tail.index(before: tail.endIndex)]
        // "OFFSET,START+SIZE" (6.1 and later) or "START+SIZE".
        let fields = inside.split(separator: ",", omittingEmptySubsequences: false)
        guard !name.isEmpty, fields.count <= 2, let placement = fields.last,
              fields.count == 1 || UInt64(fields[0], radix: 16) != nil else { return nil }
        let parts = placement.split(separator: "+", omittingEmptySubsequences: false)
        guard parts.count == 2, let start = UInt64(parts[0], radix: 16), let size = UInt64(parts[1], radix: 16) else {
            return nil
        }
        return .mapping(KernelFaultReport.Mapping(name: String(name), start: start, size: size))
    }

    /// `N (core N, socket N)`.
    private static func isCPUSuffix(_ text: Substring) -> Bool {
        var scanner = FieldScanner(text)
        return scanner.decimal() && scanner.literal(" (core ") && scanner.decimal() && scanner.literal(", socket ")
            && scanner.decimal() && scanner.literal(")") && scanner.rest.isEmpty
    }
}

/// Reads fixed fields off the front of a substring.
private struct FieldScanner {
    var rest: Substring

    init(_ text: Substring) { rest = text }

    /// Consumes `text` if the rest starts with it.
    mutating func literal(_ text: String) -> Bool {
        guard rest.hasPrefix(text) else { return false }
        rest = rest.dropFirst(text.count)
        return true
    }

    /// Consumes lowercase hex digits (1 to 16).
    mutating func hex() -> UInt64? {
        let digits = rest.prefix(while: { $0.isHexDigit && !$0.isUppercase })
        guard !digits.isEmpty, digits.count <= 16, let value = UInt64(digits, radix: 16) else { return nil }
        rest = rest[digits.endIndex...]
        return value
    }

    /// Consumes decimal digits.
    mutating func decimal() -> Bool {
        let digits = rest.prefix(while: \.isASCIIDigit)
        guard !digits.isEmpty else { return false }
        rest = rest[digits.endIndex...]
        return true
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
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
            fd = try SystemCall.run("open", path) { open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) }
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
        guard let text = try? String(contentsOfFile: exceptionTraceSwitch, encoding: .utf8) else { return false }
        return text.trimmingCharacters(in: .whitespacesAndNewlines) != "0"
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
            guard record.contains("segfault at ") || record.contains("traps: "),
                  var report = KernelFaultRecord.parse(record) else { continue }
            report.processID = Self.process(ofThread: report.threadID)
            state.window.append(report)
            if state.window.count > KernelFaultLog.capacity {
                state.window.removeFirst(state.window.count - KernelFaultLog.capacity)
            }
        }
    }

    /// The process `tid` belongs to, while the thread still exists (`Tgid:` in /proc/TID/status).
    static func process(ofThread tid: Int32) -> Int32? {
        guard let text = try? String(contentsOfFile: "/proc/\(tid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Tgid:") {
            return Int32(line.dropFirst("Tgid:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
