import Architecture
import LinuxSystem

/// A system call the Engine intends to inject, with its exact arguments, so the target's seccomp
/// filters can be asked about it first.
struct PlannedSystemCall {
    /// For messages, e.g. "mmap(PROT_READ|PROT_EXEC)".
    let label: String
    /// The system call number (`HostArchitecture.systemCalls`).
    let number: Int
    /// Up to six arguments.
    let arguments: [UInt64]

    /// Names each part.
    init(label: String, number: Int, arguments: [UInt64]) {
        self.label = label
        self.number = number
        self.arguments = arguments
    }

    /// The call an injected program ends with.
    init(_ ending: InjectionProgram.Ending, label: String) {
        self.init(label: label, number: ending.number, arguments: ending.arguments)
    }
}

/// The target thread's seccomp filters, evaluated for each call before it is injected: a call a
/// filter would kill, trap or trace on is never injected, and one it would refuse becomes a reason.
///
/// The gate is only as good as the moment it is read: a filter installed after it (by the thread
/// itself, or by any other thread of the process with `SECCOMP_FILTER_FLAG_TSYNC`) would judge the
/// calls instead. So it is read while every thread of the process is held, and stays true until they
/// are released.
struct SeccompGate {
    private let filters: [SeccompFilter]
    private let instruction: UInt64

    /// Reads the seccomp mode (`Seccomp:` of /proc/PID/task/TID/status) and the filters of thread
    /// `tid` of `pid`, which the caller holds stopped together with every other thread of the process.
    init(process pid: ProcessID, thread tid: ThreadID, instruction: UInt64) throws(UnpatchableReason) {
        try self.init(thread: tid, status: try SeccompGate.status(of: pid, thread: tid), instruction: instruction)
    }

    /// Reads the filters of thread `tid`, whose `status` (its seccomp mode) was read while it and
    /// every other thread of its process were held, as they still are.
    init(thread tid: ThreadID, status: ProcessStatus, instruction: UInt64) throws(UnpatchableReason) {
        try self.init(tid: tid, mode: status.seccompMode, instruction: instruction)
    }

    /// /proc/PID/task/TID/status (through the process's `directory` when given), for its seccomp
    /// mode; a process that is gone says so.
    static func status(of pid: ProcessID, thread tid: ThreadID, in directory: ProcessDirectory? = nil) throws(UnpatchableReason) -> ProcessStatus {
        do {
            if let directory { return try ProcFS.status(of: directory, thread: tid) }
            return try ProcFS.status(of: pid, thread: tid)
        } catch {
            if error.isProcessGone { throw .processGone }
            throw .seccompUnreadable(detail: "\(error)")
        }
    }

    /// Reads the filters of the stopped thread `tid`, whose seccomp `mode` was read while it was
    /// stopped; none when seccomp is off for it.
    init(tid: ThreadID, mode: Int, instruction: UInt64) throws(UnpatchableReason) {
        self.instruction = instruction
        switch mode {
        case 0:
            filters = []
        case 1:
            throw .seccompStrictMode
        default:
            do {
                filters = try Ptrace.seccompFilters(tid).map(SeccompFilter.init(instructions:))
            } catch {
                throw .seccompUnreadable(detail: "\(error)")
            }
        }
    }

    private init(filters: [SeccompFilter], instruction: UInt64) {
        self.filters = filters
        self.instruction = instruction
    }

    /// The same filters, for calls made from the system call instruction at `address` (a filter may
    /// look at the instruction pointer).
    func at(_ address: UInt64) -> SeccompGate { SeccompGate(filters: filters, instruction: address) }

    /// Throws the reason the filters give for refusing `call`, if they would.
    func check(_ call: PlannedSystemCall) throws(UnpatchableReason) {
        guard !filters.isEmpty else { return }
        let data = SeccompData(systemCall: Int32(call.number), instructionPointer: instruction,
                               arguments: call.arguments + Array(repeating: 0, count: max(0, 6 - call.arguments.count)))
        switch SeccompEvaluator.evaluate(filters, for: data) {
        case .allow, .log:
            return
        case let .errno(number):
            throw .seccompDenies(systemCall: call.label, errno: Int32(number))
        case .trap:
            throw .seccompWouldKill(systemCall: call.label, action: "send SIGSYS (trap)")
        case .trace:
            throw .seccompWouldKill(systemCall: call.label, action: "hand the call to a seccomp tracer")
        case .userNotify:
            throw .seccompWouldKill(systemCall: call.label, action: "hand the call to a user-space supervisor")
        case .killThread:
            throw .seccompWouldKill(systemCall: call.label, action: "kill the thread")
        case .killProcess:
            throw .seccompWouldKill(systemCall: call.label, action: "kill the process")
        }
    }

    /// Whether `call` would pass.
    func allows(_ call: PlannedSystemCall) -> Bool {
        (try? check(call)) != nil
    }
}
