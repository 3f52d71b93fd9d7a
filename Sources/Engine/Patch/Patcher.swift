import Architecture
import Artifact
import Crypto
import Glibc
import LinuxSystem

/// Tunables of a patch operation.
public struct PatchOptions: Sendable {
    /// How long all threads may take to stop before we resume them and report busy.
    public var stopDeadlineMicroseconds: UInt64 = 200_000
    /// How long mapping the patch object (every thread held, each stopping within
    /// `stopDeadlineMicroseconds`) may take.
    public var loadDeadlineMicroseconds: UInt64 = 2_000_000
    /// How many times the whole stop is released and taken again (once the threads inside have run
    /// again) while a thread is inside a patch window, before that thread is single-stepped out.
    public var restopsBeforeEvacuation = 8
    /// Most single-steps spent moving one thread out of a patch window.
    public var evacuationStepLimit = 1_000
    /// Bytes of each held thread's stack, from its stack pointer, searched for an address strictly
    /// inside a patch window: a signal frame or a return address saved there would bring the
    /// thread back into the middle of the jump.
    public var returnScanBytes = 4096
    /// Also refuse (busy) while any thread's stack holds a return address into a replaced function.
    public var strictStackCheck = false
    /// Bytes of each thread's stack the strict check reads.
    public var stackScanBytes = 64 * 1024
    /// Run the stop window at SCHED_FIFO, so the pause is not stretched by our own preemption.
    public var raiseSchedulingPriority = true
    /// Time the steps of each stop window (`Patcher.lastStopWindow`): for the benchmark's
    /// breakdown, not the agent.
    public var timesStopWindow = false

    /// The defaults.
    public init() {}
}

/// Where the time of one stop window went: microseconds from the first thread asked to stop to the
/// end of each step, in order (a step that did not run ends where the one before it did).
public struct StopWindowTimes: Sendable, Equatable {
    /// Every thread seized and asked to stop, the thread list read again and found complete.
    public var seized: UInt64 = 0
    /// Every thread stopped.
    public var stopped: UInt64 = 0
    /// Every thread's instruction pointer compared with the patch windows (its registers read).
    public var checked: UInt64 = 0
    /// Every entry read again and found as planned.
    public var verified: UInt64 = 0
    /// Threads inside a window single-stepped out (and the strict stack check, when on).
    public var evacuated: UInt64 = 0
    /// Every entry written and read back.
    public var written: UInt64 = 0
    /// Every thread detached: the pause.
    public var released: UInt64 = 0
    /// Threads held.
    public var threads = 0
    /// Stops released and taken again because a thread was inside a window (these times are the
    /// last stop's), and how long those earlier stops held the process in all.
    public var restops = 0
    public var earlierStopsMicroseconds: UInt64 = 0

    /// No step timed yet.
    public init() {}
}

/// Why a floor measurement (`Patcher.stopFloor`) stopped nothing, or not every thread.
public struct StopFloorRefusal: Error, Sendable {
    /// The outcome a patch would have had: busy (a thread did not stop in time) or unpatchable.
    public let outcome: PatchOutcome
}

/// Applies, replaces and reverts hotpatches in live processes. All calls on one instance must come
/// from the same OS thread (ptrace requires it); see `TracerThread`.
public final class Patcher {
    /// The options in force.
    public let options: PatchOptions
    /// Shared facts about mapped files.
    public let cache: ObjectCache
    /// The steps of the last stop window (a redirect's or a floor's), when
    /// `PatchOptions.timesStopWindow` is set; nil when the last operation stopped nothing.
    public private(set) var lastStopWindow: StopWindowTimes?
    /// The hold taken over from the exec gate for the reconcile in progress: every stop of it uses
    /// this hold (its other threads stopped too) instead of seizing anew, and none releases it.
    private var adopted: TracedProcess?
    /// The layout the caller read just before, for the reconcile in progress (nil: read it).
    private var justRead: TargetFinder.ProcessLayout?
    /// How deep the raised spans of the operation in progress nest (a first apply's span holds
    /// the load and the redirect, each raised too), and the outermost one's raise: only that one
    /// asks the scheduler anything, so a nested span costs no system call.
    private var raisedSpans = 0
    private var outermostRaise: SchedulingPriority?
    /// The calling thread's own policy, read at its first raise: a patcher's thread is its own
    /// (a tracer worker, or the exec gate's thread raised for life), and nothing else changes its
    /// policy, so each later raise is one system call and each restore one.
    private var threadPriority: SchedulingPriority?
    /// The /proc directory of the process the reconcile in progress works on: its reads, and the
    /// thread listings of its holds, go through it (see `ProcessDirectory`).
    private var directory: ProcessDirectory?
    /// The patching process itself (never patched), asked once.
    private let agent = ProcessID.current

    /// A patcher with `options`, sharing `cache` with its target finder.
    public init(options: PatchOptions = PatchOptions(), cache: ObjectCache = ObjectCache()) {
        self.options = options
        self.cache = cache
    }

    /// Brings every targeted object `match` maps to its fix in `desired` (an object without one
    /// runs its own code again), in one stop of the process, or changes nothing. `known` lists
    /// every other fix of the same objects (other levels), so their jumps are recognised and
    /// replaced or removed. What is applied is read from the process itself; nothing depends on
    /// saved state. The report says, object by object, which release's fix it runs, and which
    /// object refused when the process could not be patched.
    public func reconcile(_ match: ProcessMatch, desired: DesiredFixes, known: [ObjectFix] = []) -> ProcessPatchReport {
        let started = Monotonic.now
        lastStopWindow = nil
        var report = ProcessPatchReport(pid: match.process.pid, startTime: match.process.startTime,
                                        objectPath: match.objects.first?.path ?? "", outcome: .notApplied, pauseMicroseconds: nil,
                                        totalMicroseconds: 0, threadCount: 0, evacuatedThreads: 0, injectedSystemCalls: 0)
        report.objects = match.objects.map { ObjectPatchReport(path: $0.path, buildID: $0.buildID) }
        do throws(LoadFailure) {
            try run(match, desired: desired, known: known, report: &report)
        } catch {
            report.outcome = Patcher.outcome(of: error)
        }
        report.totalMicroseconds = Monotonic.now.microseconds(since: started)
        return report
    }

    /// Brings `match`'s one object to `desired` (nil: no hotpatch at all); `known` lists the other
    /// levels of the same object's hotpatches. The one-object form of `reconcile(_:desired:known:)`,
    /// for a target handed over without a release.
    public func reconcile(_ match: TargetMatch, desired: HotpatchTarget?, known: [HotpatchTarget] = []) -> ProcessPatchReport {
        let fixes = desired.map { [$0.buildID: ObjectFix(target: $0, release: nil)] } ?? [:]
        return reconcile(ProcessMatch(match), desired: DesiredFixes(release: nil, fixes: fixes),
                         known: known.map { ObjectFix(target: $0, release: nil) })
    }

    /// `reconcile(_:desired:known:)` for a new process the exec gate holds at its start (`hold`,
    /// stopped right after its file's relocation): the loads and the redirect use that hold, with
    /// any other thread of the process stopped too, and leave it held; the caller releases it.
    /// Must run on the thread that seized it.
    public func reconcile(_ match: ProcessMatch, desired: DesiredFixes, known: [ObjectFix] = [], holding hold: StartHold) -> ProcessPatchReport {
        adopted = hold.traced
        defer { adopted = nil }
        return reconcile(match, desired: desired, known: known)
    }

    /// `reconcile(_:desired:known:)` for a process whose `layout` (mappings, and the objects among
    /// them) the caller read on this thread just before, finding `match` in it: the patch starts
    /// from it instead of reading it again (a host pass finds and patches each process in one go).
    /// It must have been read after `match.process`'s start time, which the patch checks first: a
    /// pid reused in between then fails that check instead of being patched from another
    /// process's mappings.
    func reconcile(_ match: ProcessMatch, desired: DesiredFixes, known: [ObjectFix] = [], layout: TargetFinder.ProcessLayout) -> ProcessPatchReport {
        justRead = layout
        defer { justRead = nil }
        return reconcile(match, desired: desired, known: known)
    }

    private static func outcome(of failure: LoadFailure) -> PatchOutcome {
        switch failure {
        case let .busy(reason): return .busy(reason: reason)
        case let .unpatchable(reason): return .unpatchable(reason)
        }
    }

    /// One function as this process has it.
    private struct Site {
        let redirection: FunctionRedirection
        /// Where its region starts: the padding before the entry it uses, else the entry.
        let address: UInt64
        /// Its region's bytes now, and as the hotpatch was built for.
        let memory: [UInt8]
        let original: [UInt8]
        let state: EntryState

        /// The function's entry.
        var entry: UInt64 { address + redirection.padding }
        /// The function's body, entry first.
        var body: Range<UInt64> { entry..<(entry + redirection.size) }
    }

    /// One targeted object of the process: its fix, the functions any of its fixes touches, and
    /// (once planned) where its patch image lies and what its replacements' addresses are.
    private struct ObjectWork {
        let index: Int
        let object: LoadedObject
        let fix: ObjectFix?
        let known: [ObjectFix]
        let sites: [Site]
        var patchFile: PatchFile?
        var imageBase: UInt64?
    }

    /// Runs `body` for the object at `index` of the report: a failure is recorded as that
    /// object's refusal before it stops the whole process.
    private func attributed<T>(to index: Int, in report: inout ProcessPatchReport,
                               _ body: () throws(LoadFailure) -> T) throws(LoadFailure) -> T {
        do { return try body() } catch {
            report.objects[index].refusal = Patcher.outcome(of: error)
            throw error
        }
    }

    private func run(_ match: ProcessMatch, desired: DesiredFixes, known: [ObjectFix],
                     report: inout ProcessPatchReport) throws(LoadFailure) {
        let pid = match.process.pid
        // The same rule as the host's exclusions, for callers that patch one process directly.
        if let protected = ExclusionPolicy.protection(of: pid, agent: agent) {
            throw .unpatchable(.protectedProcess(why: protected.description))
        }
        // The scan's directory was opened before it read the process's start time, so everything
        // read through it is the matched process's (no second look at its identity needed); else
        // the identity is checked through a directory opened now.
        guard let directory = justRead?.directory ?? ProcessDirectory.identified(match.process) else {
            throw .unpatchable(.processGone)
        }
        self.directory = directory
        defer { self.directory = nil }
        // A child made by vfork (posix_spawn makes them so) runs in its parent's memory until it
        // execs: what a patch wrote there would change the code under the parent's threads, which
        // this process's hold does not stop. It is left until it runs a program of its own.
        if let parent = directory.parent, parent.rawValue > 1, ProcFS.sharesMemory(pid, with: parent) == true {
            throw .busy("it shares its memory with its parent, PID \(parent) (a vfork or posix_spawn child before its exec)")
        }
        var mappings: [MemoryMapping]
        let memory: ProcessMemory
        do {
            mappings = try justRead?.mappings ?? ProcFS.maps(of: directory)
            memory = try ProcessMemory(directory)
        } catch {
            throw Patcher.gone(error) ?? .unpatchable(.systemFailure(detail: "\(error)"))
        }

        // The objects as the process maps them now (it may have been re-scanned since the match).
        let loaded = justRead?.objects ?? LoadedObjects.of(pid: pid, mappings: mappings, cache: cache)
        var images = PatchImageMarker.images(in: mappings, memory: memory)

        // 1. Every object's entries, read and classified; any refusal stops the whole process.
        var work: [ObjectWork] = []
        for (index, matched) in match.objects.enumerated() {
            let next: ObjectWork
            do throws(LoadFailure) {
                next = try inspect(matched, index: index, among: loaded, pid: pid, desired: desired, known: known,
                                   images: images, memory: memory)
            } catch {
                report.objects[index].refusal = Patcher.outcome(of: error)
                throw error
            }
            report.objects[index].inspected = true
            report.objects[index].release = Patcher.fixInForce(next.sites, candidates: next.known + (next.fix.map { [$0] } ?? []),
                                                               images: images)
            work.append(next)
        }

        // 2. Every patch object read and checked, still without touching the process.
        for position in work.indices {
            guard let fix = work[position].fix else { continue }
            work[position].patchFile = try attributed(to: work[position].index, in: &report) { () throws(LoadFailure) -> PatchFile in
                try Patcher.checkedPatchFile(fix.target, cache: cache)
            }
        }

        // 3. Each patch image not mapped yet is loaded. Each load holds the process's threads on
        // its own (a hold per image): mapping an image changes no behaviour, since nothing jumps to
        // it before the one redirect stop below. An image loaded for a process that another object
        // then refuses stays mapped, unused, and is found again by name on the next try.
        // When one image is loaded (a first apply), its hold is kept for the redirect: one stop of
        // the process instead of two (released below if anything fails before the redirect).
        let imagesToLoad = work.filter { item in
            item.fix.map { fix in !images.contains { $0.name == PatchLoader.name(of: fix.target.patchObjectPath) } } ?? false
        }.count
        // A load reads the process's status with every thread held (the seccomp mode of the thread
        // its calls run in) and refuses what the checks below refuse (a seize fails on a traced
        // process, a hold sees a stopped one, the gate refuses strict mode): its read stands for
        // this one, which a first apply then does without.
        if imagesToLoad == 0 { try checkStatus(of: directory, report: &report) }
        // That span runs raised as a whole, from the load's hold to the redirect's release: dropped
        // to normal priority between the load and the redirect, the thread was preempted for 190 µs
        // on average while the process waited stopped (the agent's other threads take the CPU).
        // Not raised before the hold: the load's planning holds nothing, and raised it kept the
        // processes other workers hold from running their programs. Restored after the hold's
        // release (defer order).
        let keepsHold = imagesToLoad == 1 && adopted == nil
        var holdRaised = false
        defer { if holdRaised { lowerPriority() } }
        var keptHold: TracedProcess?
        var loadEnded: Monotonic.Instant?
        defer { keptHold?.release() }
        for position in work.indices {
            guard let fix = work[position].fix, let patchFile = work[position].patchFile else { continue }
            let object = work[position].object
            let loader = PatchLoader(patch: patchFile.object, path: fix.target.patchObjectPath, cache: cache, file: patchFile.file,
                                     farAreaBytes: patchFile.farAreaBytes)
            if let image = images.first(where: { $0.name == loader.name }) {
                work[position].imageBase = image.base
                continue
            }
            var pause: UInt64?
            let loadedImage: PatchLoader.LoadOutcome
            do throws(LoadFailure) {
                loadedImage = try load(loader, fix: fix.target, into: pid, object: object, objects: loaded,
                                       mappings: mappings, memory: memory, keepingHold: keepsHold,
                                       atHold: {
                                           guard keepsHold, !holdRaised else { return }
                                           raisePriority()
                                           holdRaised = true
                                       }, pause: &pause, holds: &report.holds)
                if report.statusBefore == nil { report.statusBefore = loadedImage.leaderStatus }
                if let hold = loadedImage.hold {
                    keptHold = hold
                    loadEnded = Monotonic.now
                    if let first = hold.firstStop { pause = (pause ?? 0) + loadEnded!.microseconds(since: first) }
                }
            } catch {
                if let pause { report.loadPauseMicroseconds = (report.loadPauseMicroseconds ?? 0) + pause }
                report.objects[work[position].index].refusal = Patcher.outcome(of: error)
                throw error
            }
            if let pause { report.loadPauseMicroseconds = (report.loadPauseMicroseconds ?? 0) + pause }
            report.injectedSystemCalls += loadedImage.injected
            report.injectionStops += loadedImage.stops
            images.append(loadedImage.image)
            work[position].imageBase = loadedImage.image.base
            // The next image must find its room around this one (a read of the maps only when
            // another image is still to be loaded).
            let anotherLoad = work[(position + 1)...].contains { item in
                item.fix.map { fix in !images.contains { $0.name == PatchLoader.name(of: fix.target.patchObjectPath) } } ?? false
            }
            if anotherLoad {
                do { mappings = try ProcFS.maps(of: directory) } catch {
                    throw Patcher.gone(error) ?? .unpatchable(.systemFailure(detail: "\(error)"))
                }
            }
        }

        // The user ids and name reported are the ones the process had right before its patch (the
        // calls of a load may have run in a thread other than the main one, whose status it then left unread).
        if imagesToLoad > 0, report.statusBefore == nil {
            do { report.statusBefore = try ProcFS.status(of: directory) } catch {
                throw Patcher.gone(error) ?? .unpatchable(.systemFailure(detail: "\(error)"))
            }
        }

        // 4. Every entry write of every object, planned.
        var writes: [EntryWrite] = []
        for item in work {
            let planned = try attributed(to: item.index, in: &report) { () throws(LoadFailure) -> [EntryWrite] in
                try Patcher.plannedWrites(item)
            }
            if !planned.isEmpty { report.objects[item.index].written = true }
            writes += planned
        }
        let wantsAFix = work.contains { $0.fix != nil }
        if writes.isEmpty {
            report.outcome = wantsAFix ? .alreadyApplied : .notApplied
        } else {
            // 5. One stop for all of them (the load's, when it was kept).
            let continuing = keptHold.map { (hold: $0, since: loadEnded ?? Monotonic.now) }
            keptHold = nil
            try stopAndWrite(pid: pid, writes: writes, sites: work.flatMap(\.sites), memory: memory,
                             continuing: continuing, report: &report)
            report.outcome = wantsAFix ? .applied : .reverted
        }
        for item in work {
            report.objects[item.index].release = item.fix?.release
            if item.fix != nil, let base = item.imageBase, let image = images.first(where: { $0.base == base }) {
                report.objects[item.index].image = (base - PatchImageMarker.pageSize)..<(base + image.size)
            }
        }
    }

    /// Reads the process's status into `report` (`statusBefore`) and refuses, before any hold, a
    /// process another tracer holds, one in seccomp strict mode (which cannot be left) and one
    /// stopped by a signal (not one the exec gate holds: that is our tracing stop, "t").
    private func checkStatus(of directory: ProcessDirectory, report: inout ProcessPatchReport) throws(LoadFailure) {
        let status: ProcessStatus
        do { status = try ProcFS.status(of: directory) } catch {
            throw Patcher.gone(error) ?? .unpatchable(.systemFailure(detail: "\(error)"))
        }
        report.statusBefore = status
        if let tracer = status.tracer, !TracedProcess.isOurThread(tracer) {
            throw .unpatchable(.tracedBy(tracer: tracer))
        }
        if status.seccompMode == 1 { throw .unpatchable(.seccompStrictMode) }
        if adopted == nil, status.state == "T" || status.state == "t" { throw .busy("the process is stopped by a signal") }
    }

    /// Reads and classifies every entry any fix of `matched` touches, as the process maps it now.
    private func inspect(_ matched: LoadedObject, index: Int, among loaded: [LoadedObject], pid: ProcessID,
                         desired: DesiredFixes, known: [ObjectFix], images: [PatchImage],
                         memory: borrowing ProcessMemory) throws(LoadFailure) -> ObjectWork {
        guard let object = loaded.first(where: { $0.buildID == matched.buildID && $0.loadBias == matched.loadBias }) else {
            throw .unpatchable(.processGone)
        }
        let fix = desired.fix(for: object.buildID)
        let others = known.filter { $0.target.buildID == object.buildID }
        let sites = try readSites(pid: pid, targets: others.map(\.target) + (fix.map { [$0.target] } ?? []),
                                  object: object, images: images, memory: memory)
        // Refuse before touching anything: foreign bytes anywhere stop the whole process's patch.
        for site in sites where site.state == .foreign {
            throw .unpatchable(.entryBytesDiffer(symbol: site.redirection.symbol, address: site.entry))
        }
        return ObjectWork(index: index, object: object, fix: fix, known: others, sites: sites)
    }

    /// The patch object of `target`, read (cached) and checked: it exports every replacement, no
    /// function it redirects is shorter than the shortest jump, and it declares each referenced
    /// symbol as the reference's kind says (thread-local or not).
    private static func checkedPatchFile(_ target: HotpatchTarget, cache: ObjectCache) throws(LoadFailure) -> PatchFile {
        let patchFile: PatchFile
        do { patchFile = try cache.patchFile(at: target.patchObjectPath) } catch {
            throw .unpatchable(.patchObjectRejected(detail: "\(error)"))
        }
        let patchObject = patchFile.object
        for redirection in target.redirections {
            // A shorter function is redirected through the padding before it, which the planner checked.
            guard redirection.padding > 0 || redirection.size >= UInt64(HostArchitecture.nearJumpLength) else {
                throw .unpatchable(.functionTooShort(symbol: redirection.symbol, size: redirection.size,
                                                     needed: HostArchitecture.nearJumpLength))
            }
            guard patchObject.exportedAddress(of: redirection.replacement) != nil else {
                throw .unpatchable(.patchObjectRejected(detail: "\(target.patchObjectPath) does not export \(redirection.replacement)"))
            }
        }
        // A reference locates an address or a TLS offset; read as the other, the patch would touch
        // the wrong memory, so its kind and the patch's declaration must agree.
        for reference in target.references {
            guard let need = patchObject.requiredSymbols.first(where: { $0.name == reference.symbol }),
                  need.isThreadLocal != (reference.kind == .threadLocal) else { continue }
            let declared = need.isThreadLocal ? "declares it __thread" : "declares it an ordinary symbol"
            throw .unpatchable(.patchObjectRejected(detail: "\(target.patchObjectPath) \(declared), but the release's reference to \(reference.symbol) is of kind \(reference.kind.rawValue); rebuild the patch with the declaration the target has (\(reference.kind == .threadLocal ? "extern __thread" : "no __thread"))"))
        }
        return patchFile
    }

    /// Maps `target`'s patch object into `pid` near `object`, with every thread held. `objects` are
    /// the files the process maps (images loaded since are anonymous and change none of them).
    /// `atHold` runs right before the load first stops the process.
    private func load(_ loader: PatchLoader, fix target: HotpatchTarget, into pid: ProcessID, object: LoadedObject,
                      objects: [LoadedObject], mappings: [MemoryMapping], memory: borrowing ProcessMemory,
                      keepingHold: Bool, atHold: () -> Void, pause: inout UInt64?,
                      holds: inout Int) throws(LoadFailure) -> PatchLoader.LoadOutcome {
        // A function only the near jump can redirect (entry hop, too short, near_only) needs the image within its reach.
        let needsNear = target.redirections.first { $0.nearJumpNeed != nil }
        var references: [String: UInt64] = [:]
        for reference in target.references { references[reference.symbol] = object.loadBias &+ reference.offset }
        let executable = justRead?.executablePath ?? directory.flatMap { try? ProcFS.executablePath(of: $0) }
        var resolver = SymbolResolver(objects: objects, executablePath: executable, references: references, cache: cache)
        // Like the stop window, the injection is short and runs raised, from the hold on: the time
        // the held threads spend between our requests is where the agent's death costs the most.
        var raised = false
        defer { if raised { lowerPriority() } }
        return try loader.load(into: pid, target: object, mappings: mappings, requireNearFor: needsNear,
                               atHold: {
                                   atHold()
                                   guard !raised else { return }
                                   raisePriority()
                                   raised = true
                               },
                               resolver: &resolver, memory: memory, stopWithin: options.stopDeadlineMicroseconds,
                               deadline: Monotonic.now.adding(microseconds: options.loadDeadlineMicroseconds),
                               holding: adopted, directory: directory, keepingHold: keepingHold, pause: &pause, holds: &holds)
    }

    /// The writes that bring `item`'s entries to its fix (jumps into its image) or back to the
    /// original bytes (no fix).
    private static func plannedWrites(_ item: ObjectWork) throws(LoadFailure) -> [EntryWrite] {
        var writes: [EntryWrite] = []
        for site in item.sites {
            var target: UInt64?
            if let fix = item.fix, let base = item.imageBase, let patchObject = item.patchFile?.object,
               let wanted = fix.target.redirections.first(where: { $0.offset == site.redirection.offset }),
               let value = patchObject.exportedAddress(of: wanted.replacement) {
                target = base &+ value
            }
            do throws(UnpatchableReason) {
                if let write = try EntryPlan.write(from: site.state, memory: site.memory, original: site.original,
                                                   address: site.address, padding: Int(site.redirection.padding),
                                                   nearOnly: site.redirection.nearOnly, target: target,
                                                   symbol: site.redirection.symbol) {
                    writes.append(write)
                }
            } catch {
                throw .unpatchable(error)
            }
        }
        return writes
    }

    /// The fix among `candidates` whose jumps are all in place (each into its own image), the
    /// highest level first; nil when the object runs its own code or what it runs is no known fix.
    private static func fixInForce(_ sites: [Site], candidates: [ObjectFix], images: [PatchImage]) -> FixRelease? {
        let ordered = candidates.sorted { ($0.release?.level ?? 0) > ($1.release?.level ?? 0) }
        for candidate in ordered {
            let name = PatchLoader.name(of: candidate.target.patchObjectPath)
            guard let image = images.first(where: { $0.name == name }) else { continue }
            let inPlace = candidate.target.redirections.allSatisfy { redirection in
                guard let site = sites.first(where: { $0.redirection.offset == redirection.offset }),
                      case let .redirected(target, _) = site.state else { return false }
                return image.contains(target)
            }
            if inPlace, !candidate.target.redirections.isEmpty { return candidate.release }
        }
        return nil
    }

    /// Reads every function any of `targets` touches in `object` and classifies its entry.
    private func readSites(pid: ProcessID, targets: [HotpatchTarget], object: LoadedObject,
                           images: [PatchImage], memory: borrowing ProcessMemory) throws(LoadFailure) -> [Site] {
        var byOffset: [UInt64: FunctionRedirection] = [:]
        for target in targets where target.buildID == object.buildID {
            for redirection in target.redirections { byOffset[redirection.offset] = redirection }
        }
        let ordered = byOffset.values.sorted(by: { $0.offset < $1.offset })
        for redirection in ordered {
            guard redirection.size > 0, redirection.size <= 1 << 20, redirection.padding <= redirection.offset,
                  redirection.padding <= UInt64(HostArchitecture.nearJumpLength) else {
                throw .unpatchable(.patchObjectRejected(detail: "function \(redirection.symbol) has an implausible size \(redirection.size) or padding \(redirection.padding)"))
            }
        }
        // Functions within 4 KiB of one another are read at once; one that span does not hold (a
        // read that failed) is read on its own, for its own error.
        let together = Patcher.span(of: ordered.map { (address: object.loadBias &+ $0.regionOffset, count: Int($0.regionSize)) },
                                    memory: memory)
        var sites: [Site] = []
        for redirection in ordered {
            let address = object.loadBias &+ redirection.regionOffset
            let entry = object.loadBias &+ redirection.offset
            let current: [UInt8]
            if let read = together?.bytes(at: address, count: Int(redirection.regionSize)) {
                current = read
            } else {
                do { current = try memory.read(at: address, count: Int(redirection.regionSize)) } catch {
                    throw Patcher.gone(error) ?? .unpatchable(.entryBytesDiffer(symbol: redirection.symbol, address: entry))
                }
            }
            let original: [UInt8]
            if let known = cache.originalBytes(digest: redirection.sha256) {
                // Proven by its digest before, in this process or another: no hash a process.
                original = known
            } else if Patcher.digest(current) == redirection.sha256 {
                original = current
                cache.noteOriginalBytes(current, digest: redirection.sha256)
            } else {
                // Our jump (or something else) is there: the original comes from the mapped file.
                guard let fromFile = originalBytes(of: redirection, at: address, object: object, pid: pid),
                      Patcher.digest(fromFile) == redirection.sha256 else {
                    throw .unpatchable(.entryBytesDiffer(symbol: redirection.symbol, address: entry))
                }
                cache.noteOriginalBytes(fromFile, digest: redirection.sha256)
                original = fromFile
            }
            let state = EntryPlan.classify(memory: current, original: original, address: address,
                                           padding: Int(redirection.padding)) { candidate in
                images.contains { $0.contains(candidate) }
            }
            sites.append(Site(redirection: redirection, address: address, memory: current, original: original, state: state))
        }
        return sites
    }

    /// The function's region in the file the process mapped (through map_files: the very inode).
    private func originalBytes(of redirection: FunctionRedirection, at address: UInt64, object: LoadedObject,
                               pid: ProcessID) -> [UInt8]? {
        guard let mapping = object.mapping(containing: address) else { return nil }
        let path = ProcFS.mappedFilePath(of: pid, mapping: mapping)
        guard let file = try? OpenFile(path: path, flags: O_RDONLY) else { return nil }
        let bytes = try? file.read(at: address - mapping.start + mapping.offset, count: Int(redirection.regionSize))
        return bytes?.count == Int(redirection.regionSize) ? bytes : nil
    }

    /// The stop window: stop every thread, check, evacuate, write, resume. Nothing is parsed here.
    /// `continuing` is a load's hold, every thread still stopped, and when its load ended: it is the
    /// window's first stop (released on every path), and the pause counts from that end (the load's
    /// part is the load's pause).
    private func stopAndWrite(pid: ProcessID, writes: [EntryWrite], sites: [Site], memory: borrowing ProcessMemory,
                              continuing: (hold: TracedProcess, since: Monotonic.Instant)? = nil,
                              report: inout ProcessPatchReport) throws(LoadFailure) {
        raisePriority()
        defer { lowerPriority() }
        let windows = writes.map(\.window)
        if adopted == nil, continuing == nil {
            // The same read the window makes, once before the stop: a changed entry is refused
            // without stopping anything, and the window's own read then finds its path warm.
            for (write, now) in zip(writes, Patcher.read(writes, count: { $0.expected.count }, memory: memory)) where now != write.expected {
                throw .busy("function at 0x\(String(write.address, radix: 16)) changed while planning")
            }
        }
        var deadline = Monotonic.now.adding(microseconds: options.stopDeadlineMicroseconds)
        var traced: TracedProcess
        let windowStart = Monotonic.now
        do throws(StopFailure) {
            if let adopted {
                try adopted.holdRemainingThreads(deadline: deadline)
                traced = adopted
            } else if let continuing {
                traced = continuing.hold
            } else {
                traced = try TracedProcess.stopAllThreads(pid: pid, deadline: deadline, readingRegisters: true, directory: directory)
                report.holds += 1
            }
        } catch {
            throw PatchLoader.failure(error)
        }
        var earlierStops: UInt64 = 0
        // A thread caught inside a window is single-stepped out, and a single-step is the one
        // moment a thread cannot survive the agent's death (see `TracedProcess.singleStep`). Most
        // such threads are just passing through: let the process run a moment and stop it again,
        // and step only a thread that is still inside after a few tries.
        // A hold taken over from the exec gate is never let go in between (the process would run
        // on into its own code): a thread inside is stepped out at once.
        // A thread can also come back inside a window later: a signal handler that interrupted a
        // function's first bytes returns to the address the kernel saved in its signal frame. Such
        // a thread is let run the same way (its handler is most often about to return); one still
        // there at the window makes the process busy. A hold taken over from the exec gate has run
        // none of the program's code: nothing of the kind on its stacks.
        // Most stops find every thread outside the windows: one look, and nothing more to do.
        var returning = adopted == nil ? threadsReturningInside(traced, windows: windows, memory: memory) : []
        var anyInside = Patcher.anyThreadResumesInside(traced, windows: windows) || !returning.isEmpty
        for _ in 0..<(adopted == nil && anyInside ? options.restopsBeforeEvacuation : 0) {
            let stepping = Patcher.threadsToStep(traced, windows: windows)
            let inside = stepping + Patcher.running(returning.map(\.thread), in: traced).filter { !stepping.contains($0) }
            if inside.isEmpty { break }
            let ran = inside.map { ProcFS.cpuTime(process: pid, thread: $0) }
            let first = traced.firstStop
            traced.release()
            if let first { earlierStops += Monotonic.now.microseconds(since: first) }
            // On a busy machine a released thread may wait for a CPU for milliseconds: stop again
            // only once every thread that was inside has run (or after 20 ms).
            let patience = Monotonic.now.adding(microseconds: 20_000)
            repeat {
                Monotonic.sleep(microseconds: 200)
            } while Monotonic.now < patience
                && zip(inside, ran).contains { tid, before in
                    guard let before, let now = ProcFS.cpuTime(process: pid, thread: tid) else { return false }
                    return now == before
                }
            deadline = Monotonic.now.adding(microseconds: options.stopDeadlineMicroseconds)
            do {
                traced = try TracedProcess.stopAllThreads(pid: pid, deadline: deadline, readingRegisters: true, directory: directory)
            } catch {
                throw PatchLoader.failure(error)
            }
            report.restops += 1
            report.holds += 1
            returning = threadsReturningInside(traced, windows: windows, memory: memory)
            anyInside = Patcher.anyThreadResumesInside(traced, windows: windows) || !returning.isEmpty
        }
        // A window in a load's hold starts with every thread already stopped: no seize of its own.
        var clock = StopWindowClock(traced, enabled: options.timesStopWindow,
                                    heldSince: traced === continuing?.hold ? continuing?.since : nil)
        var failure: LoadFailure?
        do throws(LoadFailure) {
            report.threadCount = traced.threads.count
            // Every thread's registers were read as it stopped, and looked at above: a thread that
            // resumes inside a window (running there, or blocked in a call that restarts there) is
            // evacuated below.
            clock.mark(.checked)
            // Entries close together are read, written and read back as one span (one system call
            // each instead of one per entry): the bytes between them are written back as this read,
            // with every thread held, found them.
            // The span covers what each entry checks and what each writes.
            let span = Patcher.span(of: writes.map { (address: $0.address, count: max($0.bytes.count, $0.expected.count)) }, memory: memory)
            let found = span.map { span in writes.map { span.bytes(at: $0.address, count: $0.expected.count) } }
                ?? Patcher.read(writes, count: { $0.expected.count }, memory: memory)
            for (write, now) in zip(writes, found) where now != write.expected {
                throw .busy("function at 0x\(String(write.address, radix: 16)) changed while planning")
            }
            clock.mark(.verified)
            if let (tid, address) = returning.first {
                let window = windows.first { $0.contains(address) }?.lowerBound ?? address
                throw .busy("thread \(tid) would come back to 0x\(String(address, radix: 16)), inside the patch window at "
                            + "0x\(String(window, radix: 16)): a signal handler (or a call) interrupted the function's first bytes")
            }
            if anyInside { try evacuate(traced, windows: windows, deadline: deadline, memory: memory) }
            if options.strictStackCheck { try scanStacks(traced, sites: sites, memory: memory) }
            clock.mark(.evacuated)
            if let span, let merged = span.written(with: writes) {
                do { try memory.write(merged, at: span.low, verify: false) } catch {
                    throw .unpatchable(.systemFailure(detail: "writing the jumps at 0x\(String(span.low, radix: 16)): \(error)"))
                }
                // Read back, still with every thread held.
                guard (try? memory.read(at: span.low, count: merged.count)) == merged else {
                    throw .unpatchable(.systemFailure(detail: "writing the jumps at 0x\(String(span.low, radix: 16)): the bytes read back differ"))
                }
            } else {
                for write in writes {
                    do { try memory.write(write.bytes, at: write.address, verify: false) } catch {
                        throw .unpatchable(.systemFailure(detail: "writing the jump at 0x\(String(write.address, radix: 16)): \(error)"))
                    }
                }
                // Every write read back, still with every thread held.
                let written = Patcher.read(writes, count: { $0.bytes.count }, memory: memory)
                for (write, back) in zip(writes, written) where back != write.bytes {
                    throw .unpatchable(.systemFailure(detail: "writing the jump at 0x\(String(write.address, radix: 16)): the bytes read back differ"))
                }
            }
            clock.mark(.written)
        } catch {
            failure = error
        }
        report.evacuatedThreads = traced.evacuations
        let first = if adopted != nil { windowStart } else if let continuing, traced === continuing.hold { continuing.since } else { traced.firstStop }
        if adopted == nil { traced.release() }
        clock.mark(.released)
        if let first { report.pauseMicroseconds = Monotonic.now.microseconds(since: first) }
        if var times = clock.times {
            times.restops = report.restops
            times.earlierStopsMicroseconds = earlierStops
            lastStopWindow = times
        }
        if let failure { throw failure }
    }

    /// Runs the calling thread at SCHED_FIFO (when `raiseSchedulingPriority`) until the matching
    /// `lowerPriority()`; spans nest, and only the outermost raises and restores.
    private func raisePriority() {
        guard options.raiseSchedulingPriority else { return }
        if raisedSpans == 0 {
            let own = threadPriority ?? SchedulingPriority.ofCallingThread()
            threadPriority = own
            outermostRaise = own.raise()
        }
        raisedSpans += 1
    }

    /// Ends a span `raisePriority()` began; the outermost puts the thread's policy back.
    private func lowerPriority() {
        guard options.raiseSchedulingPriority, raisedSpans > 0 else { return }
        raisedSpans -= 1
        if raisedSpans == 0 {
            outermostRaise?.restore()
            outermostRaise = nil
        }
    }

    /// Stops every thread of `process` and lets them go again, writing nothing, exactly as the
    /// stop window does (same priority, same seize and wait, each thread's registers read as it
    /// stops, same release): the floor a redirect's pause can reach on this process now. Refused
    /// like a patch for a protected, vanished or traced process.
    public func stopFloor(of process: ProcessIdentity) throws(StopFloorRefusal) -> StopWindowTimes {
        lastStopWindow = nil
        let pid = process.pid
        if let protected = ExclusionPolicy.protection(of: pid, agent: agent) {
            throw StopFloorRefusal(outcome: .unpatchable(.protectedProcess(why: protected.description)))
        }
        guard let directory = ProcessDirectory.identified(process) else { throw StopFloorRefusal(outcome: .unpatchable(.processGone)) }
        raisePriority()
        defer { lowerPriority() }
        let deadline = Monotonic.now.adding(microseconds: options.stopDeadlineMicroseconds)
        let traced: TracedProcess
        do {
            traced = try TracedProcess.stopAllThreads(pid: pid, deadline: deadline, readingRegisters: true, directory: directory)
        } catch {
            throw StopFloorRefusal(outcome: Patcher.outcome(of: PatchLoader.failure(error)))
        }
        var clock = StopWindowClock(traced, enabled: true)
        traced.release()
        clock.mark(.released)
        let times = clock.times!
        if options.timesStopWindow { lastStopWindow = times }
        return times
    }

    /// The bytes at each write's address, `count` of them per write: one read of `/proc/PID/mem`
    /// for all of them when they lie within one page's length (a release's functions often sit
    /// side by side), else one read each; nil for a write whose bytes could not be read.
    static func read(_ writes: [EntryWrite], count: (EntryWrite) -> Int, memory: borrowing ProcessMemory) -> [[UInt8]?] {
        if let span = span(of: writes.map { (address: $0.address, count: count($0)) }, memory: memory) {
            return writes.map { span.bytes(at: $0.address, count: count($0)) }
        }
        return writes.map { try? memory.read(at: $0.address, count: count($0)) }
    }

    /// The bytes from the lowest region's start (an entry's, a function's) to the end of the highest, read at once, when
    /// there are several regions and they lie within 4 KiB; nil otherwise, or when that read fails.
    static func span(of regions: [(address: UInt64, count: Int)], memory: borrowing ProcessMemory) -> EntrySpan? {
        guard regions.count > 1, let low = regions.map(\.address).min(),
              let high = regions.map({ $0.address + UInt64($0.count) }).max(),
              high - low <= 4096, let bytes = try? memory.read(at: low, count: Int(high - low)) else { return nil }
        return EntrySpan(low: low, bytes: bytes)
    }

    /// The stopped threads inside a window (past its first byte) and not blocked in a system
    /// call: those `evacuate` would single-step.
    private static func threadsToStep(_ traced: TracedProcess, windows: [Range<UInt64>]) -> [ThreadID] {
        running(traced.stoppedThreadIDs, in: traced).filter { tid in
            guard let ip = traced.registers(of: tid)?.instructionPointer else { return false }
            return windows.contains { $0.contains(ip) && ip != $0.lowerBound }
        }
    }

    /// The threads of `threads` that are not blocked in a system call (they resume where they
    /// stopped): the ones that, let go, run on at once.
    private static func running(_ threads: [ThreadID], in traced: TracedProcess) -> [ThreadID] {
        threads.filter { tid in
            guard let registers = traced.registers(of: tid) else { return false }
            return registers.instructionPointer == registers.resumeAddress
        }
    }

    /// The held threads whose stack, within `options.returnScanBytes` of its pointer, holds an
    /// address strictly inside a window, each with the first such address: a signal handler that
    /// interrupted a function's first bytes (the kernel saved the interrupted address in the signal
    /// frame, just above the handler's own stack), or a call made from them, would come back into
    /// the middle of the jump. One `pread` of the mem file a thread (from its stack pointer rounded
    /// down to 8, where saved addresses sit; only up to the end of its mapping when that is
    /// nearer), about 3 µs with the process held: its first page is cold, and `process_vm_readv`,
    /// each or all threads at once, cost as much or more (docs/PERFORMANCE.md run 25). The address
    /// must lie past a window's first byte and before its end, so a pointer to a function (its
    /// entry) never counts.
    private func threadsReturningInside(_ traced: TracedProcess, windows: [Range<UInt64>],
                                        memory: borrowing ProcessMemory) -> [(thread: ThreadID, address: UInt64)] {
        guard options.returnScanBytes >= 8, !windows.isEmpty else { return [] }
        // One buffer for every thread's read: the scan is a tenth of a read, and an array each was
        // an allocation and a free each inside the pause.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: options.returnScanBytes, alignment: 8)
        defer { buffer.deallocate() }
        return traced.stoppedThreadIDs.compactMap { tid in
            guard let registers = traced.registers(of: tid) else { return nil }
            let count = memory.readAvailable(at: registers.stackPointer & ~7, into: buffer)
            guard let hit = Patcher.firstAddressStrictlyInside(windows, in: UnsafeRawBufferPointer(rebasing: buffer[..<count])) else { return nil }
            return (thread: tid, address: hit)
        }
    }

    /// Up to `count` bytes of a held thread's stack from its stack pointer (rounded down to 8, as
    /// `threadsReturningInside` reads it); nil when the thread is not stopped.
    private static func stackTop(of tid: ThreadID, in traced: TracedProcess, count: Int, memory: borrowing ProcessMemory) -> [UInt8]? {
        guard let registers = traced.registers(of: tid) else { return nil }
        return memory.readAvailable(at: registers.stackPointer & ~7, count: count)
    }

    /// The first little-endian 8-byte word of `stack` (taken at multiples of 8 from its start)
    /// that lies strictly inside one of `windows`: past its first byte and before its end.
    static func firstAddressStrictlyInside(_ windows: [Range<UInt64>], in stack: [UInt8]) -> UInt64? {
        stack.withUnsafeBytes { firstAddressStrictlyInside(windows, in: $0) }
    }

    /// `firstAddressStrictlyInside(_:in:)` over bytes read into a buffer.
    static func firstAddressStrictlyInside(_ windows: [Range<UInt64>], in raw: UnsafeRawBufferPointer) -> UInt64? {
        guard let low = windows.map(\.lowerBound).min(), let high = windows.map(\.upperBound).max() else { return nil }
        var offset = 0
        while offset + 8 <= raw.count {
            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            // Most words fall outside the span of every window: one comparison each.
            if word > low, word < high, windows.contains(where: { word > $0.lowerBound && word < $0.upperBound }) {
                return word
            }
            offset += 8
        }
        return nil
    }

    /// Whether a stopped thread would resume inside a window (past its first byte): what makes
    /// `evacuate` step it out, or refuse when it is blocked in a system call there.
    private static func anyThreadResumesInside(_ traced: TracedProcess, windows: [Range<UInt64>]) -> Bool {
        traced.threads.keys.contains { tid in
            guard let ip = traced.registers(of: tid)?.resumeAddress else { return false }
            return windows.contains { $0.contains(ip) && ip != $0.lowerBound }
        }
    }

    /// Single-steps each thread whose instruction pointer is inside a window until it is out.
    private func evacuate(_ traced: TracedProcess, windows: [Range<UInt64>], deadline: Monotonic.Instant,
                          memory: borrowing ProcessMemory) throws(LoadFailure) {
        for tid in traced.stoppedThreadIDs {
            var steps = 0
            while true {
                guard let registers = traced.registers(of: tid) else { break }
                let ip = registers.resumeAddress
                // ip == start is safe: the thread would run our jump, complete, from its first byte.
                guard windows.contains(where: { $0.contains(ip) && ip != $0.lowerBound }) else { break }
                if ip != registers.instructionPointer {
                    // Blocked in a system call that would restart inside the window: stepping
                    // would only block again.
                    throw .busy("thread \(tid) is blocked in a system call inside a patch window at 0x\(String(ip, radix: 16))")
                }
                if steps == 0 { traced.countEvacuation() }
                steps += 1
                if steps > options.evacuationStepLimit {
                    throw .busy("thread \(tid) stays inside a patch window at 0x\(String(ip, radix: 16))")
                }
                do {
                    // One instruction takes microseconds; a step that does not come back soon has
                    // entered a blocking call, and the other threads must not wait for it.
                    let stepDeadline = min(deadline, Monotonic.now.adding(microseconds: 5_000))
                    guard try traced.singleStep(tid, deadline: stepDeadline) else { break }
                } catch {
                    if case .deadlineExceeded = error {
                        throw .busy("thread \(tid) did not leave the patch window at 0x\(String(ip, radix: 16)) in time")
                    }
                    throw PatchLoader.failure(error)
                }
            }
            // A step over a call made from inside a window leaves the thread in the called
            // function with its return address, inside the window, on top of its stack.
            if steps > 0, let top = Patcher.stackTop(of: tid, in: traced, count: 8, memory: memory),
               let back = Patcher.firstAddressStrictlyInside(windows, in: top) {
                throw .busy("thread \(tid) stepped into a call made inside a patch window and would come back to 0x\(String(back, radix: 16))")
            }
        }
    }

    /// Conservative check: a thread running inside a replaced function's body, or any stack word
    /// pointing into one, means old code may still run, so we back off (strict mode only).
    private func scanStacks(_ traced: TracedProcess, sites: [Site], memory: borrowing ProcessMemory) throws(LoadFailure) {
        let bodies = sites.map(\.body)
        for tid in traced.stoppedThreadIDs {
            guard let registers = traced.registers(of: tid) else { continue }
            // At the entry the thread runs the new jump; anywhere after it, the old function.
            let ip = registers.resumeAddress
            if let hit = bodies.firstIndex(where: { $0.contains(ip) && ip != $0.lowerBound }) {
                throw .busy("thread \(tid) is running inside \(sites[hit].redirection.symbol) (strict stack check)")
            }
            var stack: [UInt8] = []
            var size = options.stackScanBytes
            while size >= 4096, stack.isEmpty {
                stack = (try? memory.read(at: registers.stackPointer, count: size)) ?? []
                size /= 2
            }
            var offset = 0
            while offset + 8 <= stack.count {
                let word = stack[offset..<offset + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                if let hit = bodies.firstIndex(where: { $0.contains(word) && word != $0.lowerBound }) {
                    throw .busy("thread \(tid) may return into \(sites[hit].redirection.symbol) (strict stack check)")
                }
                offset += 8
            }
        }
    }

    private static func gone(_ error: any Error) -> LoadFailure? {
        if error.isProcessGone { return .unpatchable(.processGone) }
        return nil
    }

    static func digest(_ bytes: [UInt8]) -> String { Hex.encode(SHA256.hash(data: bytes)) }
}

/// Marks the end of each step of one stop window, from the stop's first request.
///
/// Inside the window a mark only takes the time (one vDSO clock read); the figures are worked out
/// once the threads are let go (`times`), so timing a window adds next to nothing to its pause.
private struct StopWindowClock {
    /// The steps a window may mark, in order.
    enum Step {
        case checked, verified, evacuated, written, released
    }

    private let start: Monotonic.Instant
    private let enabled: Bool
    private let threads: Int
    private let seized: Monotonic.Instant?
    private let stopped: Monotonic.Instant?
    private var marks: (Monotonic.Instant?, Monotonic.Instant?, Monotonic.Instant?, Monotonic.Instant?, Monotonic.Instant?)
        = (nil, nil, nil, nil, nil)

    /// Starts from `traced`'s first stop, with its seize and stop already timed, or from `heldSince`
    /// for a hold taken before the window (seized and stopped at its start); times nothing unless
    /// `enabled`.
    init(_ traced: TracedProcess, enabled: Bool, heldSince: Monotonic.Instant? = nil) {
        start = heldSince ?? traced.firstStop ?? Monotonic.now
        self.enabled = enabled
        threads = traced.threads.count
        seized = heldSince == nil ? traced.allSeized : nil
        stopped = heldSince == nil ? traced.allStopped ?? traced.allSeized : nil
    }

    /// Ends `step` now; a step not marked ends with the last one marked before it.
    mutating func mark(_ step: Step) {
        guard enabled else { return }
        let now = Monotonic.now
        switch step {
        case .checked: marks.0 = now
        case .verified: marks.1 = now
        case .evacuated: marks.2 = now
        case .written: marks.3 = now
        case .released: marks.4 = now
        }
    }

    /// The window's figures (nil unless enabled), each step's end in µs from the start.
    var times: StopWindowTimes? {
        guard enabled else { return nil }
        var times = StopWindowTimes()
        times.threads = threads
        times.seized = seized.map { $0.microseconds(since: start) } ?? 0
        times.stopped = stopped.map { $0.microseconds(since: start) } ?? times.seized
        var last = times.stopped
        func end(_ mark: Monotonic.Instant?) -> UInt64 {
            if let mark { last = mark.microseconds(since: start) }
            return last
        }
        times.checked = end(marks.0)
        times.verified = end(marks.1)
        times.evacuated = end(marks.2)
        times.written = end(marks.3)
        times.released = end(marks.4)
        return times
    }
}

/// Raises the calling thread to SCHED_FIFO for the stop window (and the exec gate's answering
/// thread for its life) and puts it back afterwards.
public struct SchedulingPriority {
    private let policy: Int32
    private let previous: sched_param

    /// Raises the calling thread, or returns nil if the system refuses (no CAP_SYS_NICE).
    public static func raise() -> SchedulingPriority? { ofCallingThread().raise() }

    /// The calling thread's policy and priority now.
    static func ofCallingThread() -> SchedulingPriority {
        var previous = sched_param()
        sched_getparam(0, &previous)
        return SchedulingPriority(policy: sched_getscheduler(0), previous: previous)
    }

    /// Raises the calling thread, whose policy and priority are this value's, and returns this
    /// value to restore them; nil if the system refuses. Already raised (the exec gate's thread):
    /// restoring is then a no-op.
    func raise() -> SchedulingPriority? {
        if policy == SCHED_FIFO, previous.sched_priority >= 1 { return self }
        var raised = sched_param(sched_priority: 1)
        guard sched_setscheduler(0, SCHED_FIFO, &raised) == 0 else { return nil }
        return self
    }

    /// Restores the thread's previous policy.
    public func restore() {
        var previous = self.previous
        sched_setscheduler(0, policy, &previous)
    }
}
