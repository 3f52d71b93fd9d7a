import Artifact
import Foundation
import Glibc
import LinuxSystem
import Synchronization

/// Brings every process on the host that maps a targeted object to the desired hotpatch level,
/// spreading processes over a few tracer threads (one Patcher each, since ptrace requests must come
/// from the thread that attached).
public final class HostPatcher: Sendable {
    private struct Worker: @unchecked Sendable {
        let thread: TracerThread
        let patcher: Patcher
    }
    private let workers: [Worker]
    /// Shared facts about mapped files (build-ids, exports), read once per file.
    public let cache: ObjectCache
    /// The options every worker uses.
    public let options: PatchOptions

    /// The default number of tracer threads: two per CPU. A worker spends most of a patch waiting
    /// for its tracee to reach a stop (each injected call is two such round trips), and a blocked
    /// waiter frees its CPU, so a second worker per CPU overlaps those waits: 1,000 idle processes
    /// took 584 ms with 2 workers and 263 ms with 4 on 2 CPUs (docs/PERFORMANCE.md, run 5).
    public static var defaultWorkerCount: Int { 2 * max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Starts `workers` tracer threads (default: `defaultWorkerCount`).
    public init(workers: Int = HostPatcher.defaultWorkerCount, options: PatchOptions = PatchOptions(),
                cache: ObjectCache = ObjectCache()) {
        self.cache = cache
        self.options = options
        self.workers = (0..<max(1, workers)).map { index in
            Worker(thread: TracerThread(name: "hotpatch-tracer-\(index)"), patcher: Patcher(options: options, cache: cache))
        }
    }

    deinit { workers.forEach { $0.thread.shutdown() } }

    /// The processes (among `pids`, default all) that map an object some hotpatch in `hotpatches`
    /// targets, each with all such objects it maps.
    public func matches(for hotpatches: [Hotpatch], among pids: [ProcessID]? = nil) -> [ProcessMatch] {
        let buildIDs = Set(hotpatches.flatMap { $0.targets.map(\.buildID) })
        return TargetFinder(cache: cache).processes(buildIDs: buildIDs, among: pids)
    }

    /// Finds the processes (among `pids`, default all) that map an object some hotpatch in `known`
    /// targets and brings each one `policy` does not exclude to `desired` (each object to its fix,
    /// in one stop a process), in one call. Returns one report per matching process, excluded ones
    /// included with their reason, in the order of `pids` (of /proc when nil).
    ///
    /// Each worker takes the next process, reads its maps and, when it matches, patches it at
    /// once from the mappings it just read: no second read of them, and no wait for the whole scan
    /// before the first patch. What the caller's health check needs of each patched process (its
    /// credentials) is the patcher's own first look at it, taken a moment before its stop, so a
    /// process a broken fix kills at once is judged by what it was.
    public func reconcile(among pids: [ProcessID]? = nil, desired: DesiredFixes, known: [Hotpatch],
                          excluding policy: ExclusionPolicy) -> [HostProcessReport] {
        let buildIDs = Set(known.flatMap { $0.targets.map(\.buildID) })
        guard !buildIDs.isEmpty else { return [] }
        // A process the exec gate holds at its start is patched by that hold (a seize here would fail).
        let candidates = (pids ?? ((try? ProcFS.processIDs()) ?? [])).filter { !StartHolds.contains($0) }
        let finder = TargetFinder(cache: cache)
        let knownFixes = ObjectFix.all(of: known)
        return onWorkers(count: candidates.count) { worker, index -> HostProcessReport? in
            guard let (match, found) = finder.processWithLayout(buildIDs: buildIDs, pid: candidates[index]) else { return nil }
            let pid = match.process.pid
            var layout = found
            layout.executablePath = found.directory.flatMap { try? ProcFS.executablePath(of: $0) }
            let executable = layout.executablePath ?? match.objects[0].path
            // Read through the open directory only when a unit exclusion needs it (then the caller
            // names the process's unit from it too); else the caller reads it for a process it has
            // not described yet, not every pass for every process.
            var cgroup: String?
            let exclusion = policy.exclusion(of: pid, executable: executable) {
                cgroup = found.directory.flatMap { ProcFS.cgroup(of: $0) }
                return cgroup
            }
            switch exclusion {
            case nil:
                let report = Self.reconcile(match, on: worker, desired: desired, knownFixes: knownFixes, layout: layout)
                return HostProcessReport(match: match, executable: executable, patched: report, cgroup: cgroup)
            // Never attached: reported as the patcher would, so status shows it exposed.
            case .initProcess?:
                return HostProcessReport(match: match, executable: executable,
                                         result: .reconciled(.refused(match, .protectedProcess(why: ProcessExclusion.initProcess.description))),
                                         cgroup: cgroup)
            case let exclusion?:
                return HostProcessReport(match: match, executable: executable, result: .excluded(exclusion), cgroup: cgroup)
            }
        }.compactMap { $0 }
    }

    /// `reconcile(among:desired:known:excluding:)` at the level `desired` (nil: none), each object
    /// running the fix of the highest level of `known` up to it that names the object.
    public func reconcile(among pids: [ProcessID]? = nil, desired: Hotpatch?, known: [Hotpatch],
                          excluding policy: ExclusionPolicy) -> [HostProcessReport] {
        reconcile(among: pids, desired: .cumulative(desired: desired, levels: known), known: known, excluding: policy)
    }

    /// Reconciles each process to `desired`, all its objects in one stop, replacing or removing
    /// the jumps of any level in `known`. Returns one report per match, in the order of `matches`.
    public func reconcile(_ matches: [ProcessMatch], desired: DesiredFixes, known: [Hotpatch]) -> [ProcessPatchReport] {
        let knownFixes = ObjectFix.all(of: known)
        return onWorkers(count: matches.count) { worker, index in
            Self.reconcile(matches[index], on: worker, desired: desired, knownFixes: knownFixes)
        }
    }

    /// Reconciles one process on `worker`'s thread, with the fixes of `knownFixes` for the objects
    /// it maps; from `layout` when the worker just read it.
    private static func reconcile(_ match: ProcessMatch, on worker: Worker, desired: DesiredFixes, knownFixes: [ObjectFix],
                                  layout: TargetFinder.ProcessLayout? = nil) -> ProcessPatchReport {
        let buildIDs = Set(match.objects.compactMap(\.buildID))
        let known = knownFixes.filter { buildIDs.contains($0.target.buildID) }
        if let layout { return worker.patcher.reconcile(match, desired: desired, known: known, layout: layout) }
        return worker.patcher.reconcile(match, desired: desired, known: known)
    }

    /// The floor of a host pass over `processes`: each one's threads stopped and let go on the
    /// same workers, at the same priority, as a patch would, with nothing written
    /// (`Patcher.stopFloor(of:)`). One result per process, in the order given.
    public func stopFloors(of processes: [ProcessIdentity]) -> [Result<StopWindowTimes, StopFloorRefusal>] {
        onWorkers(count: processes.count) { worker, index in
            Result { () throws(StopFloorRefusal) in try worker.patcher.stopFloor(of: processes[index]) }
        }
    }

    /// Runs `body` for every index below `count` on the workers' threads, each worker taking the
    /// next index as it finishes one; returns the results in index order.
    private func onWorkers<Result: Sendable>(count: Int, _ body: @escaping @Sendable (Worker, Int) -> Result) -> [Result] {
        guard count > 0 else { return [] }
        let next = Atomic<Int>(0)
        let results = ResultSlots<Result>(count: count)
        let group = DispatchGroup()
        for worker in workers.prefix(count) {
            group.enter()
            worker.thread.submit {
                while true {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < count else { break }
                    let result = body(worker, index)
                    results.set(index, to: result)
                }
                group.leave()
            }
        }
        group.wait()
        return results.collected()
    }

    /// `reconcile(_:desired:known:)` at the level `desired` (nil: none), levels cumulative per object.
    public func reconcile(_ matches: [ProcessMatch], desired: Hotpatch?, known: [Hotpatch]) -> [ProcessPatchReport] {
        reconcile(matches, desired: .cumulative(desired: desired, levels: known), known: known)
    }
}

/// Which processes are never patched, decided in this one place: the agent itself, processes
/// excluded by configuration (executable globs, systemd units) and PID 1.
public struct ExclusionPolicy: Sendable, Equatable {
    /// The patching process itself.
    public var agent: ProcessID
    /// fnmatch(3) globs on the executable path.
    public var executableGlobs: [String]
    /// systemd unit names, looked up in the process's cgroup path.
    public var units: [String]

    /// A policy for the calling process with the configured exclusions.
    public init(agent: ProcessID = .current, executableGlobs: [String] = [], units: [String] = []) {
        self.agent = agent
        self.executableGlobs = executableGlobs
        self.units = units
    }

    /// Why `pid` (running `executable`) is not patched, or nil. `cgroup` gives the text of its
    /// /proc/PID/cgroup, read only when units are configured.
    public func exclusion(of pid: ProcessID, executable: String, cgroup: () -> String?) -> ProcessExclusion? {
        if pid == agent { return .agentItself }
        for glob in executableGlobs where fnmatch(glob, executable, 0) == 0 { return .executable(glob: glob) }
        if !units.isEmpty, let cgroup = cgroup() {
            // Unit names appear as path components of the process's cgroup (v1 or v2).
            let components = Set(cgroup.split(whereSeparator: { $0 == "/" || $0 == "\n" || $0 == ":" }).map(String.init))
            for unit in units where components.contains(unit) { return .unit(unit) }
        }
        return Self.protection(of: pid, agent: agent)
    }

    /// Why `pid` is never patched whatever the configuration says (the patching process itself,
    /// PID 1), or nil: the rule the `Patcher` also applies to a process it is handed directly.
    public static func protection(of pid: ProcessID, agent: ProcessID) -> ProcessExclusion? {
        if pid == agent { return .agentItself }
        if pid.rawValue == 1 { return .initProcess }
        return nil
    }
}

/// Why a process is not patched, by `ExclusionPolicy`.
public enum ProcessExclusion: Equatable, Sendable, CustomStringConvertible {
    /// The patching process itself: never reported.
    case agentItself
    /// Its executable matches a configured glob.
    case executable(glob: String)
    /// It runs in a configured systemd unit.
    case unit(String)
    /// PID 1: a stop of init stalls the whole system; reported unpatchable (it stays exposed).
    case initProcess

    /// Whether configuration asked for it (status counts these).
    public var isConfigured: Bool {
        switch self {
        case .executable, .unit: return true
        case .agentItself, .initProcess: return false
        }
    }

    /// A short text for logs and status.
    public var description: String {
        switch self {
        case .agentItself: return "the agent itself"
        case let .executable(glob): return "excluded by configuration (executable matches \(glob))"
        case let .unit(unit): return "excluded by configuration (unit \(unit))"
        case .initProcess: return "PID 1"
        }
    }
}

/// One matching process after `HostPatcher.reconcile(among:desired:known:excluding:)`.
public struct HostProcessReport: Sendable {
    /// What happened to it.
    public enum Result: Sendable {
        /// Not touched, and why.
        case excluded(ProcessExclusion)
        /// Reconciled; the patcher's report.
        case reconciled(ProcessPatchReport)
    }

    /// The process and the targeted objects it maps.
    public var match: ProcessMatch
    /// Its executable path (the object's path when /proc/PID/exe cannot be read).
    public var executable: String
    /// What happened to it.
    public var result: Result
    /// Its user ids, as the patcher read them right before its patch (`statusBefore`): a process
    /// a broken fix kills at once is dead before the caller could read them, and the health check
    /// judges a death by them. nil when not patched or unreadable.
    public var userIDs: ProcessStatus.UserIDs?
    /// Its command name (`comm`, escaped as /proc/PID/status prints it), read with the user ids;
    /// nil when not read.
    public var command: String?
    /// The text of its /proc/PID/cgroup as the scan read it (only for unit exclusions); nil when
    /// not read.
    public var cgroup: String?

    /// The report of `match` reconciled as `report` says, with the user ids (when a fix was
    /// applied) and the command name the patcher read just before its stop: once let go, a process
    /// a broken fix kills at its first call cannot be read any more.
    init(match: ProcessMatch, executable: String, patched report: ProcessPatchReport, cgroup: String? = nil) {
        self.init(match: match, executable: executable, result: .reconciled(report),
                  userIDs: report.outcome == .applied ? report.statusBefore?.userIDs : nil,
                  command: report.statusBefore?.name, cgroup: cgroup)
    }

    /// A report of `match`.
    public init(match: ProcessMatch, executable: String, result: Result, userIDs: ProcessStatus.UserIDs? = nil,
                command: String? = nil, cgroup: String? = nil) {
        self.match = match
        self.executable = executable
        self.result = result
        self.userIDs = userIDs
        self.command = command
        self.cgroup = cgroup
    }
}

extension ProcessPatchReport {
    /// The report of a process refused before anything was read or written.
    static func refused(_ match: ProcessMatch, _ reason: UnpatchableReason) -> ProcessPatchReport {
        var report = ProcessPatchReport(pid: match.process.pid, startTime: match.process.startTime, objectPath: match.objects[0].path,
                                        outcome: .unpatchable(reason), pauseMicroseconds: nil, totalMicroseconds: 0, threadCount: 0,
                                        evacuatedThreads: 0, injectedSystemCalls: 0)
        report.objects = match.objects.map { ObjectPatchReport(path: $0.path, buildID: $0.buildID) }
        return report
    }
}

/// One result per index of a pass, each written by the one worker that took the index and read
/// after every worker is done (`DispatchGroup.wait` orders the writes before the read): no lock,
/// so a worker never waits on another to record a process (a mutex here was taken once a process
/// by every worker; docs/PERFORMANCE.md, run 18).
private final class ResultSlots<Result: Sendable>: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<Result?>

    /// `count` empty slots.
    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }

    deinit {
        _ = slots.deinitialize()
        slots.deallocate()
    }

    /// Records the result of `index`; each index is set once, by one thread.
    func set(_ index: Int, to result: Result) { slots[index] = result }

    /// Every result in index order, once every index was set.
    func collected() -> [Result] { slots.map { $0! } }
}
