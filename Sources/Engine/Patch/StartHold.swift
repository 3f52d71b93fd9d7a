import Architecture
import Glibc
import LinuxSystem
import Synchronization

/// A file as the kernel names it: device (major, minor) and inode, as /proc/PID/maps shows a
/// mapping's file and stat(2) any path.
public struct StartFile: Hashable, Sendable, CustomStringConvertible {
    /// The device's major and minor numbers.
    public let deviceMajor: UInt32
    public let deviceMinor: UInt32
    /// The inode number.
    public let inode: UInt64

    /// The file of `status` (stat(2) or fstat(2)), its `st_dev` split as glibc's major()/minor() do.
    public init(_ status: stat) {
        let device = UInt64(status.st_dev)
        deviceMajor = UInt32(truncatingIfNeeded: ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff)))
        deviceMinor = UInt32(truncatingIfNeeded: (device & 0xff) | ((device >> 12) & ~UInt64(0xff)))
        inode = UInt64(status.st_ino)
    }

    /// The file a mapping maps.
    init(_ mapping: MemoryMapping) {
        deviceMajor = mapping.deviceMajor
        deviceMinor = mapping.deviceMinor
        inode = mapping.inode
    }

    /// The file that `path` leads to (through links). stat(2).
    public init(path: String) throws(SystemError) { self.init(try Files.status(path)) }

    /// "MAJOR:MINOR inode N".
    public var description: String { "\(deviceMajor):\(deviceMinor) inode \(inode)" }
}

/// Why a new process could not be held at its start.
public enum StartHoldRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another tracer (a debugger, strace, or the gate itself for an earlier file) holds it.
    case traced(by: ThreadID)
    /// It exited before it could be seized.
    case gone
    /// ptrace refused in another way.
    case system(String)

    /// Why, for the journal.
    public var description: String {
        switch self {
        case let .traced(tracer): return "traced by thread \(tracer)"
        case .gone: return "it exited"
        case let .system(detail): return detail
        }
    }
}

/// Where the stepping of a held process ended.
public enum StartHoldOutcome: Sendable, Equatable {
    /// Stopped just after the dynamic linker made the file's relocated data read-only (its RELRO
    /// `mprotect`), or, after `runToNextRelocated`, another targeted object's: mapped and
    /// relocated, and none of its code has run but its IFUNC resolvers. Patch now.
    case relocated
    /// The process never mapped the file within the first system calls after the open: a reader
    /// (a backup, `cat`, `ldd`), not a loader.
    case notMapped
    /// The bound (time or system calls) ran out first, or the process stopped on a signal, or the
    /// exec failed: the reason. The process is patched later by the usual path.
    case notReached(String)
    /// The process ended meanwhile.
    case gone
}

/// The processes held at their start now. The host's passes leave them alone (a seize would fail
/// and read as busy); the hold's own patch reports them.
public enum StartHolds {
    private static let held = Mutex<Set<ProcessID>>([])

    /// Whether `pid` is held at its start now.
    public static func contains(_ pid: ProcessID) -> Bool { held.withLock { $0.contains(pid) } }

    static func insert(_ pid: ProcessID) { _ = held.withLock { $0.insert(pid) } }
    static func remove(_ pid: ProcessID) { _ = held.withLock { $0.remove(pid) } }
}

/// One new process held by the exec gate from the moment it opens a targeted file (as an
/// `execve` of it, or a loader's `openat`) until that file is mapped and relocated, and no code of
/// it has run: the point where a hotpatch makes the process run the fix from its first call.
///
/// The thread is seized while the kernel holds it on the gate's permission event (the caller
/// answers the event right after), then run from system call stop to system call stop: a stop
/// that arms nothing, so if the agent dies at any point the kernel detaches the thread and it
/// carries on as if never traced (no breakpoint, no single-step). All calls must come from the OS
/// thread that seized it.
public final class StartHold {
    /// The process and the thread that opened the file (after an exec in another thread than
    /// the leader, the main thread: the id the kernel gave it on the way).
    public let pid: ProcessID
    public private(set) var thread: ThreadID
    /// The file whose start is waited for.
    public let file: StartFile
    /// The other files that hold a targeted object (the gate's marks): one that a load after the
    /// program's start maps after `file`, and relocates after it, is waited for too
    /// (`runToNextRelocated`).
    private let otherTargets: Set<StartFile>
    /// Whether the thread's mappings of `otherTargets` are followed: in a load after the program's
    /// start (decided when the file is mapped).
    private var followsOtherTargets = false
    /// The files of `otherTargets` the thread mapped while held, not relocated then, with a RELRO
    /// page the dynamic linker makes read-only once it relocated them.
    private var targetsMappedHere: Set<StartFile> = []
    /// Those of them not relocated yet when the file was.
    private var awaited: Set<StartFile> = []
    /// The file whose RELRO `mprotect` the thread is in, between its entry and exit.
    private var protecting: StartFile?
    /// Whether the file's mark came before the dynamic linker's own, still to come.
    private var ownMarkSeen = false
    let traced: TracedProcess
    private let cache: ObjectCache
    private var mapped: Bool
    private let atExec: Bool
    private var released = false
    /// Every file whose RELRO `mprotect` the process made while held: mapped and relocated.
    public private(set) var relocatedFiles: Set<StartFile> = []
    /// The dynamic linker's file once looked up (`.some(nil)`: the program has none).
    private var interpreterFile: StartFile??
    /// System call stops (entries and exits) the stepping took.
    public private(set) var systemCallStops = 0
    /// When the thread was seized.
    public let seizedAt: Monotonic.Instant

    private init(pid: ProcessID, thread: ThreadID, file: StartFile, otherTargets: Set<StartFile>, atExec: Bool,
                 traced: TracedProcess, cache: ObjectCache) {
        self.cache = cache
        self.pid = pid
        self.thread = thread
        self.file = file
        self.otherTargets = otherTargets.subtracting([file])
        self.atExec = atExec
        self.mapped = false
        self.traced = traced
        self.seizedAt = Monotonic.now
    }

    /// Seizes thread `tid` of process `pid`, which opened `file` (by `execve` when `atExec`) and
    /// waits for the gate's answer. An exec may come from any thread: one from another thread than
    /// the leader takes the leader's id on the way, and the hold follows it. `targets` are the
    /// files that hold a targeted object (`file` among them or not). The headers the hold reads
    /// (the file's, the dynamic linker's) are kept in `cache` (the host's, shared).
    public static func seize(thread tid: ThreadID, of pid: ProcessID, file: StartFile, targets: Set<StartFile> = [], atExec: Bool,
                             cache: ObjectCache = ObjectCache()) throws(StartHoldRefusal) -> StartHold {
        let traced: TracedProcess
        do { traced = try TracedProcess.seizeWaiting(tid, of: pid) } catch {
            switch error {
            case let .tracedBy(tracer): throw .traced(by: tracer)
            case .processGone: throw .gone
            default: throw .system("\(error)")
            }
        }
        StartHolds.insert(pid)
        return StartHold(pid: pid, thread: tid, file: file, otherTargets: targets, atExec: atExec, traced: traced, cache: cache)
    }

    /// Runs the thread from system call stop to system call stop until the dynamic linker has made
    /// `file`'s relocated data read-only (at the program's start, its own too, which follows every
    /// object of the start), and leaves it stopped right after (an interrupt stop, as a patch's own
    /// hold would). Gives up when the file is not mapped within `mappingStops` stops of the open,
    /// when nothing will mark its relocation, or after `stopLimit` stops, or at `deadline`.
    public func runToRelocated(deadline: Monotonic.Instant, stopLimit: Int = 50_000, mappingStops: Int = 64) -> StartHoldOutcome {
        do throws(StopFailure) {
            if atExec {
                guard let stopped = try traced.awaitStopThroughExec(thread, deadline: deadline) else { return .gone }
                thread = stopped
            } else {
                guard try traced.awaitStop(thread, deadline: deadline) else { return .gone }
            }
            if atExec {
                // The first stop comes after the exec: its new program must be the file.
                guard (try? StartFile(path: "/proc/\(pid)/exe")) == file else { return .notReached("the exec did not run the file") }
                mapped = true
                if let why = relocationNeverMarked(readingFrom: "/proc/\(pid)/exe") { return .notReached(why) }
            }
            return try step(deadline: deadline, stopLimit: stopLimit, mappingStops: mappingStops)
        } catch {
            return Self.outcome(of: error)
        }
    }

    /// Whether another targeted object that the same load mapped is still to be relocated: after
    /// `.relocated` at the file's mark in a load after the program's start (a `dlopen`), an object
    /// that depends on the file is relocated after it.
    public var awaitsAnotherTarget: Bool { !awaited.isEmpty }

    /// After `.relocated` with `awaitsAnotherTarget`: runs on to the mark of the next of those
    /// objects, and stops there as at the file's (`.relocated`: patch again). `.notReached` when
    /// the load makes another system call first (an IFUNC resolver's, a `malloc`'s, or its
    /// relocation ended): the usual path patches what is left.
    public func runToNextRelocated(deadline: Monotonic.Instant, stopLimit: Int = 50_000) -> StartHoldOutcome {
        guard !awaited.isEmpty else { return .notReached("no other targeted object is waited for") }
        do throws(StopFailure) { return try step(deadline: deadline, stopLimit: stopLimit, mappingStops: .max) } catch {
            return Self.outcome(of: error)
        }
    }

    private static func outcome(of error: StopFailure) -> StartHoldOutcome {
        switch error {
        case .processGone: return .gone
        case .deadlineExceeded: return .notReached("the deadline passed before the file's relocation")
        case .groupStopped: return .notReached("the process was stopped by a signal")
        default: return .notReached("\(error)")
        }
    }

    /// The stepping itself, from wherever the thread is stopped: see `runToRelocated`.
    private func step(deadline: Monotonic.Instant, stopLimit: Int, mappingStops: Int) throws(StopFailure) -> StartHoldOutcome {
        let calls = HostArchitecture.systemCalls
        while true {
            guard systemCallStops < stopLimit else { return .notReached("\(stopLimit) system call stops without the file's relocation") }
            if !mapped && systemCallStops >= mappingStops { return .notMapped }
            guard try traced.runToSystemCallStop(thread, deadline: deadline, deliveringSignals: true) else { return .gone }
            systemCallStops += 1
            guard let registers = try? Ptrace.registers(thread), let call = HostArchitecture.currentSystemCall(registers) else { continue }
            let entry = HostArchitecture.isSystemCallEntry(registers)
            if entry, call != calls.mprotect {
                if ownMarkSeen {
                    // Relocation makes no other system call: the dynamic linker is past it without
                    // its own mark (a program none of whose objects names it). Patch here, as at
                    // the file's own mark.
                    guard try traced.interruptStop(thread, deadline: deadline) else { return .gone }
                    return .relocated
                }
                if !awaited.isEmpty {
                    let left = awaited.count
                    awaited = []
                    guard try traced.interruptStop(thread, deadline: deadline) else { return .gone }
                    return .notReached("the load made another system call before the mark of \(left) more targeted object(s)")
                }
            }
            if entry, call == calls.mmap, !mapped || followsOtherTargets {
                // mmap(addr, length, prot, flags, fd, offset): a loader maps the file it opened.
                let anonymous = HostArchitecture.systemCallArgument(registers, 3) & Self.mapAnonymous != 0
                let fd = Int32(truncatingIfNeeded: HostArchitecture.systemCallArgument(registers, 4))
                let path = "/proc/\(pid)/fd/\(fd)"
                if !anonymous, fd >= 0, let opened = try? StartFile(path: path) {
                    if opened == file, !mapped {
                        mapped = true
                        // Whether its mark will come is known now, from its headers.
                        if let why = relocationNeverMarked(readingFrom: path) { return .notReached(why) }
                        // After the program's start (a dlopen), no mark of the linker's own will
                        // cover the objects the load maps after the file: follow the other targets.
                        followsOtherTargets = !otherTargets.isEmpty && !atExec && linkerMark() == .made
                    } else if otherTargets.contains(opened), !relocatedFiles.contains(opened),
                              cache.identity(of: FileKey(opened), path: path)?.relroProtectedPages != nil {
                        targetsMappedHere.insert(opened)
                    }
                }
            } else if entry, call == calls.mprotect, HostArchitecture.systemCallArgument(registers, 2) == Self.protRead {
                protecting = mappedFile(at: HostArchitecture.systemCallArgument(registers, 0))
            } else if !entry, call == calls.mprotect, let protected = protecting {
                protecting = nil
                guard HostArchitecture.systemCallResult(registers) == 0 else { continue }
                relocatedFiles.insert(protected)
                if protected == file {
                    // At the program's start, other objects may still be relocated after this
                    // one (those that depend on it): wait for the dynamic linker's own mark,
                    // which comes after them all, so that every targeted object of the start
                    // is patched in this hold.
                    if !ownMarkSeen, linkerMark() == .toCome {
                        ownMarkSeen = true
                        continue
                    }
                    // Loaded later (a dlopen), an object of the same load that depends on the
                    // file is relocated after it, and no mark of the linker's own follows: the
                    // file is patched now, and the hold runs on to the mark of each such
                    // targeted object (`runToNextRelocated`), before any constructor runs.
                    awaited = ownMarkSeen ? [] : targetsMappedHere.subtracting(relocatedFiles)
                    guard try traced.interruptStop(thread, deadline: deadline) else { return .gone }
                    return .relocated
                }
                if awaited.remove(protected) != nil {
                    guard try traced.interruptStop(thread, deadline: deadline) else { return .gone }
                    return .relocated
                }
                if mapped, protected == interpreter() {
                    // The dynamic linker makes its own RELRO read-only last, once it relocated
                    // every object the program loads at its start, and before any of their
                    // constructors: the mark of every one of them, with RELRO or without.
                    relocatedFiles.formUnion(((try? ProcFS.maps(of: pid)) ?? []).filter { $0.inode != 0 }.map(StartFile.init))
                    guard try traced.interruptStop(thread, deadline: deadline) else { return .gone }
                    return .relocated
                }
            } else if !entry {
                protecting = nil
            }
        }
    }

    /// Where the kernel mapped the dynamic linker (`AT_BASE`), read once; nil for a static executable.
    private lazy var linkerBase: UInt64? = (try? ProcFS.interpreterBase(of: pid)) ?? nil

    /// The process's dynamic linker (where `AT_BASE` lies), looked up once; nil for a static executable.
    private func interpreter() -> StartFile? {
        if let known = interpreterFile { return known }
        let found = linkerBase.flatMap { mappedFile(at: $0) }
        interpreterFile = .some(found)
        return found
    }

    /// Why no system call will ever mark `file` relocated while the process is held, when that is
    /// so: the file has no RELRO page (`-z norelro`, or a RELRO short of its first page's end) and
    /// no dynamic linker's own RELRO is still to be made read-only after it (a static executable,
    /// or a library loaded after the program's start). `path` reads the file (/proc/PID/exe, or
    /// its descriptor in the process).
    private func relocationNeverMarked(readingFrom path: String) -> String? {
        guard let identity = cache.identity(of: FileKey(file), path: path), identity.relroProtectedPages == nil else { return nil }
        let why = identity.relroVirtualAddress == nil ? "the file has no RELRO (linked with -z norelro)"
            : "the file's RELRO does not reach the end of the page it starts in (the dynamic linker makes none of it read-only)"
        switch linkerMark() {
        case .toCome: return nil
        case .made: return why + " and is loaded after the start of the program, when nothing marks the end of its relocation"
        case .none: return why + " and the program has no dynamic linker whose own RELRO would mark the end of its relocation"
        }
    }

    /// Where the dynamic linker is with its own RELRO, the mark of the end of the program's start.
    private enum LinkerMark { case toCome, made, none }

    /// The dynamic linker's own RELRO now: still writable (`toCome`), read-only (`made`), or no
    /// linker with one (`none`: a static executable).
    private func linkerMark() -> LinkerMark {
        guard let base = linkerBase, let maps = try? ProcFS.maps(of: pid),
              let linker = maps.first(where: { $0.start <= base && base < $0.end && $0.inode != 0 }),
              let identity = cache.identity(of: linker, path: ProcFS.mappedFilePath(of: pid, mapping: linker)),
              let relro = identity.relroProtectedPages else { return .none }
        let address = base &- identity.firstLoadVirtualAddress &+ relro.lowerBound
        return maps.first { $0.start <= address && address < $0.end }?.isWritable == true ? .toCome : .made
    }

    /// The file mapped at `address` in the process now, if any.
    private func mappedFile(at address: UInt64) -> StartFile? {
        guard let mappings = try? ProcFS.maps(of: pid),
              let mapping = mappings.first(where: { $0.start <= address && address < $0.end }), mapping.inode != 0 else { return nil }
        return StartFile(mapping)
    }

    /// Lets the process go (every thread detached, any signal that arrived meanwhile delivered).
    public func release() {
        guard !released else { return }
        released = true
        traced.release()
        StartHolds.remove(pid)
    }

    deinit { release() }

    private static let protRead: UInt64 = 0x1
    private static let mapAnonymous: UInt64 = 0x20
}
