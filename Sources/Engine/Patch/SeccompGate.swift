/// A system call the Engine intends to inject, with its exact arguments, so the target's seccomp
/// filters can be asked about it first.
struct PlannedSystemCall {
    /// For messages, e.g. "mmap(PROT_READ|PROT_EXEC)".
    let label: String
    /// The x86_64 system call number.
    let number: Int
    /// Up to six arguments.
    let arguments: [UInt64]
}

/// The target thread's seccomp filters, evaluated for each call before it is injected: a call a
/// filter would kill, trap or trace on is never injected, and one it would refuse becomes a reason.
struct SeccompGate {
    private let filters: [SeccompFilter]
    private let instruction: UInt64

    /// Reads the filters of the stopped thread `tid`; none when seccomp is off for it.
    init(tid: Int32, mode: Int, instruction: UInt64) throws(UnpatchableReason) {
        self.instruction = instruction
        switch mode {
        case 0:
            filters = []
        case 1:
            throw .seccompStrictMode
        default:
            do {
                filters = try Ptrace.seccompFilters(tid).map { program in
                    try SeccompFilter(instructions: program.map {
                        BPFInstruction(code: $0.code, jumpIfTrue: $0.jt, jumpIfFalse: $0.jf, k: $0.k)
                    })
                }
            } catch {
                throw .seccompUnreadable(detail: "\(error)")
            }
        }
    }

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
