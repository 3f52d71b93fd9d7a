/// What the kernel does with a system call, as decided by the seccomp filters of the calling thread.
public enum SeccompAction: Sendable, Equatable {
    /// The call runs (SECCOMP_RET_ALLOW).
    case allow
    /// The call runs and is logged (SECCOMP_RET_LOG).
    case log
    /// A tracer with PTRACE_O_TRACESECCOMP is notified with this data; without one the call fails
    /// with ENOSYS (SECCOMP_RET_TRACE).
    case trace(UInt16)
    /// A user-space supervisor decides; without one the call fails with ENOSYS (SECCOMP_RET_USER_NOTIF).
    case userNotify
    /// The call does not run and returns -errno; the kernel caps the value at 4095 (MAX_ERRNO), and
    /// errno 0 makes the skipped call return 0 (SECCOMP_RET_ERRNO).
    case errno(UInt16)
    /// The call does not run; SIGSYS is forced on the thread with this data in si_errno (SECCOMP_RET_TRAP).
    case trap(UInt16)
    /// The thread is killed with SIGSYS, the whole process if it is the last thread (SECCOMP_RET_KILL_THREAD).
    case killThread
    /// The process is killed with SIGSYS (SECCOMP_RET_KILL_PROCESS, and any unknown action value).
    case killProcess

    /// The action for a filter's 32-bit return value, as __seccomp_filter in kernel/seccomp.c
    /// interprets it: action in the high 16 bits (SECCOMP_RET_ACTION_FULL), data in the low 16.
    /// An action value the kernel does not know kills the process (the `default:` of its switch).
    public init(returnValue: UInt32) {
        let data = UInt16(truncatingIfNeeded: returnValue)
        switch returnValue & SeccompEvaluator.actionMask {
        case 0x7fff_0000: self = .allow
        case 0x7ffc_0000: self = .log
        case 0x7ff0_0000: self = .trace(data)
        case 0x7fc0_0000: self = .userNotify
        case 0x0005_0000: self = .errno(min(data, 4095))
        case 0x0003_0000: self = .trap(data)
        case 0x0000_0000: self = .killThread
        default: self = .killProcess
        }
    }

    /// True when the call runs unhindered (allow or log).
    public var letsCallRun: Bool {
        switch self {
        case .allow, .log: return true
        default: return false
        }
    }
}

/// Runs seccomp filters on a system call exactly as the kernel would, without a kernel.
public enum SeccompEvaluator {
    /// SECCOMP_RET_ACTION_FULL: the action part of a filter's return value.
    static let actionMask: UInt32 = 0xffff_0000

    /// The action the kernel takes for `data` under `filters`, given in the order
    /// PTRACE_SECCOMP_GET_FILTER numbers them (index 0 = most recently installed, which the kernel
    /// runs first). Every filter runs; as in seccomp_run_filters, the return value whose action,
    /// read as a signed 32-bit number, is lowest wins — KILL_PROCESS > KILL_THREAD > TRAP > ERRNO >
    /// USER_NOTIF > TRACE > LOG > ALLOW — and between equal actions the earlier filter's data wins.
    /// Unknown action values take part in that comparison by their value, and kill the process if
    /// they win. No filters: allow.
    public static func evaluate(_ filters: [SeccompFilter], for data: SeccompData) -> SeccompAction {
        var result: UInt32 = 0x7fff_0000
        for filter in filters {
            let value = run(filter.program, on: data)
            if Int32(bitPattern: value & actionMask) < Int32(bitPattern: result & actionMask) {
                result = value
            }
        }
        return SeccompAction(returnValue: result)
    }

    /// The raw 32-bit value one filter returns for `data`.
    public static func returnValue(of filter: SeccompFilter, for data: SeccompData) -> UInt32 {
        run(filter.program, on: data)
    }

    /// The classic BPF machine as Linux runs a seccomp filter (converted to eBPF, see
    /// bpf_convert_filter): A and X start at 0; arithmetic is on 32 bits and wraps; a division by
    /// X = 0 ends the filter with return value 0 (KILL_THREAD); a shift by X uses X's low 5 bits
    /// (checked against the kernel: 1 << 33 gives 2). Validation guarantees jumps stay in range,
    /// memory is written before it is read, and every path ends in a return.
    static func run(_ program: [BPFOperation], on data: SeccompData) -> UInt32 {
        var a: UInt32 = 0, x: UInt32 = 0
        var memory = (UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0),
                      UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0))
        var pc = 0
        return withUnsafeMutableBytes(of: &memory) { raw in
            let scratch = raw.bindMemory(to: UInt32.self)
            while true {
                switch program[pc] {
                case let .loadData(offset): a = data.word(at: offset)
                case let .loadImmediateA(value): a = value
                case let .loadImmediateX(value): x = value
                case let .loadMemoryA(index): a = scratch[index]
                case let .loadMemoryX(index): x = scratch[index]
                case let .storeA(index): scratch[index] = a
                case let .storeX(index): scratch[index] = x
                case let .arithmeticK(operation, k): a = compute(operation, a, k)
                case let .arithmeticX(operation):
                    if operation == .divide && x == 0 { return 0 }
                    a = compute(operation, a, x)
                case .negate: a = 0 &- a
                case let .jump(offset): pc += Int(offset)
                case let .jumpK(comparison, k, ifTrue, ifFalse):
                    pc = holds(comparison, a, k) ? ifTrue : ifFalse
                    continue
                case let .jumpX(comparison, ifTrue, ifFalse):
                    pc = holds(comparison, a, x) ? ifTrue : ifFalse
                    continue
                case .copyAToX: x = a
                case .copyXToA: a = x
                case let .returnK(value): return value
                case .returnA: return a
                }
                pc += 1
            }
        }
    }

    private static func compute(_ operation: BPFArithmetic, _ a: UInt32, _ b: UInt32) -> UInt32 {
        switch operation {
        case .add: return a &+ b
        case .subtract: return a &- b
        case .multiply: return a &* b
        case .divide: return a / b
        case .or: return a | b
        case .and: return a & b
        case .xor: return a ^ b
        case .shiftLeft: return a << (b & 31)
        case .shiftRight: return a >> (b & 31)
        }
    }

    private static func holds(_ comparison: BPFComparison, _ a: UInt32, _ b: UInt32) -> Bool {
        switch comparison {
        case .equal: return a == b
        case .greater: return a > b
        case .greaterOrEqual: return a >= b
        case .anyBitSet: return a & b != 0
        }
    }
}
