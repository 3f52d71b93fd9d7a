import Architecture
import Artifact
import LinuxSystem

/// Why a process cannot be patched; each case names what a person would check.
public enum UnpatchableReason: Error, Equatable, Sendable, CustomStringConvertible {
    /// PID 1 or the patching process itself (configured exclusions are `ProcessExclusion`s).
    case protectedProcess(why: String)
    /// Another tracer (debugger, strace, another agent) holds the process.
    case tracedBy(tracer: ThreadID)
    /// Seccomp strict mode allows no system call we would need.
    case seccompStrictMode
    /// A seccomp filter would kill the process (or trap) on a system call we would inject.
    case seccompWouldKill(systemCall: String, action: String)
    /// A seccomp filter would refuse a system call we need with an errno.
    case seccompDenies(systemCall: String, errno: Int32)
    /// The filters could not be read, so injecting would be a gamble.
    case seccompUnreadable(detail: String)
    /// A function's bytes are neither the original the hotpatch was built for nor our jump.
    case entryBytesDiffer(symbol: String, address: UInt64)
    /// A function is too short for the jump that can reach its replacement.
    case functionTooShort(symbol: String, size: UInt64, needed: Int)
    /// A function can be redirected only with the near jump (`need` says why), and no address
    /// range within that jump's reach of its entry is free for the patch image.
    case noRoomForNearJump(symbol: String, address: UInt64, need: NearJumpNeed)
    /// The process exited before or during the patch.
    case processGone
    /// The patch object cannot be loaded into this process (unresolved symbol, unsupported content).
    case patchObjectRejected(detail: String)
    /// The patch object could not be mapped (openat/mmap/memfd refused).
    case cannotMapPatchObject(detail: String)
    /// A system call of ours failed unexpectedly.
    case systemFailure(detail: String)

    /// A short text for logs and status.
    public var description: String {
        switch self {
        case let .protectedProcess(why): return "protected process (\(why))"
        case let .tracedBy(tracer): return "traced by PID \(tracer)"
        case .seccompStrictMode: return "seccomp strict mode allows no injected system call"
        case let .seccompWouldKill(call, action): return "seccomp filter would \(action) on \(call); not injected"
        case let .seccompDenies(call, number): return "seccomp filter denies \(call) with \(SystemError.errnoText(number))"
        case let .seccompUnreadable(detail): return "seccomp filters unreadable: \(detail)"
        case let .entryBytesDiffer(symbol, address):
            return "entry bytes of \(symbol) at 0x\(String(address, radix: 16)) differ from the hotpatch's original"
        case let .functionTooShort(symbol, size, needed):
            return "function \(symbol) is \(size) bytes, shorter than the \(needed)-byte jump that reaches its replacement"
        case let .noRoomForNearJump(symbol, address, need):
            let near = HostArchitecture.nearJumpLength, far = HostArchitecture.farJumpLength
            let why: String
            switch need {
            case .branchTargetUnderFarJump:
                why = "its own code branches into its bytes \(near)-\(far - 1), which the \(far)-byte absolute jump would overwrite (hotpatch-pack marked it near_only)"
            case .entryHop: why = "it is redirected through the padding before its entry, which holds only that jump"
            case .shorterThanFarJump: why = "it is shorter than the \(far)-byte absolute jump"
            }
            return "function \(symbol) at 0x\(String(address, radix: 16)) can take only the \(near)-byte jump (\(why)), "
                + "but no free address range within \(HostArchitecture.nearJumpReachText) of it is left for the patch object; "
                + "nothing was changed: the process must free address space near it (or be restarted) before it can be patched"
        case .processGone: return "process gone"
        case let .patchObjectRejected(detail): return "patch object rejected: \(detail)"
        case let .cannotMapPatchObject(detail): return "cannot map patch object: \(detail)"
        case let .systemFailure(detail): return "system call failed: \(detail)"
        }
    }
}

/// What happened to one process.
public enum PatchOutcome: Equatable, Sendable, CustomStringConvertible {
    /// The desired hotpatch is now in place (newly applied, or a lower level replaced).
    case applied
    /// It already was; nothing was written.
    case alreadyApplied
    /// Our jumps were removed; the original code runs again.
    case reverted
    /// There was nothing of ours to revert.
    case notApplied
    /// The process could not be patched right now (threads would not stop in time, a thread sits
    /// in a patch window); retry later.
    case busy(reason: String)
    /// The process cannot be patched until something changes.
    case unpatchable(UnpatchableReason)

    /// A short text for logs and status.
    public var description: String {
        switch self {
        case .applied: return "applied"
        case .alreadyApplied: return "already applied"
        case .reverted: return "reverted"
        case .notApplied: return "not applied"
        case let .busy(reason): return "busy (\(reason))"
        case let .unpatchable(reason): return "unpatchable: \(reason)"
        }
    }
}

/// One process's result, with the figures that matter to its owner.
public struct ProcessPatchReport: Sendable {
    /// The process.
    public var pid: ProcessID
    /// Its start time (clock ticks since boot), so a reused pid is never confused with it.
    public var startTime: UInt64
    /// The first targeted object's path as the process maps it (`objects` lists them all).
    public var objectPath: String
    /// What happened.
    public var outcome: PatchOutcome
    /// How long its threads were stopped for the redirect (first stop to last resume; in a load's
    /// kept hold, from the load's end to the resume), if stopped.
    public var pauseMicroseconds: UInt64?
    /// Its status right before its patch: read by the patcher before touching it, or (a first apply)
    /// by the load with every thread held. nil when refused before that.
    public var statusBefore: ProcessStatus? = nil
    /// How long its threads were stopped to map the patch object (first stop to last resume of
    /// each of the load's holds, summed), if it was loaded now: once per process and patch object.
    public var loadPauseMicroseconds: UInt64? = nil
    /// The whole operation, from first look to last detach.
    public var totalMicroseconds: UInt64
    /// Threads held during the stop window.
    public var threadCount: Int
    /// Threads single-stepped out of a patch window.
    public var evacuatedThreads: Int
    /// System calls injected to map the patch object (0 when it was already mapped).
    public var injectedSystemCalls: Int
    /// How many times the injection thread stopped for those calls (each a round trip to the
    /// agent; 0 when nothing was injected).
    public var injectionStops = 0
    /// Times the stop was released and taken again because a thread was inside a patch window.
    public var restops = 0
    /// How many times every thread was stopped: each load's holds and the window's stops (a first
    /// apply whose load's hold went on into the redirect counts one); none for a hold taken over.
    public var holds = 0
    /// Each targeted object the process maps, in the order of the match: what it runs now.
    public var objects: [ObjectPatchReport] = []

    /// The object whose refusal kept the whole process from being patched, if one did.
    public var refusingObject: ObjectPatchReport? { objects.first { $0.refusal != nil } }
}

/// One targeted object of a process after a reconcile: the fix in force in it, read from (or just
/// written to) the process, and whether it is the object that refused the process's patch.
public struct ObjectPatchReport: Sendable, Equatable {
    /// Its path as the process maps it.
    public var path: String
    /// Its build-id.
    public var buildID: BuildID?
    /// The release whose fix it runs now; nil when it runs its own code, or when what it runs could
    /// not be read (the process was refused before its entries were read).
    public var release: FixRelease?
    /// Whether its entries were read this time, so `release` is what the process holds now.
    public var inspected: Bool
    /// Whether its entries were written by this reconcile.
    public var written: Bool
    /// Why this object kept the process from being patched (nothing was written to any object).
    public var refusal: PatchOutcome?
    /// The addresses of the patch image its fix runs from (the marker page and every segment),
    /// when it runs one after this reconcile: where a crash in that code would lie.
    public var image: Range<UInt64>? = nil

    /// Describes one object's result.
    public init(path: String, buildID: BuildID?, release: FixRelease? = nil, inspected: Bool = false, written: Bool = false,
                refusal: PatchOutcome? = nil) {
        self.path = path
        self.buildID = buildID
        self.release = release
        self.inspected = inspected
        self.written = written
        self.refusal = refusal
    }
}
