import Artifact
import Dispatch
import Engine
import Glibc
import LinuxSystem
import Synchronization

/// Whether new processes are patched before their first call (the exec gate), or why not.
public enum ExecGateMode: Sendable, Equatable {
    /// fanotify permission events on the targeted files hold each new opener until patched.
    case fanotify
    /// Off (the reason says why: configuration, no permission events): a new process is patched
    /// soon after its exec, as before, and may run unfixed code meanwhile.
    case off(reason: String)

    /// The word `agentctl status --json` shows: "fanotify" or "off".
    public var statusName: String {
        switch self {
        case .fanotify: return "fanotify"
        case .off: return "off"
        }
    }
}

/// What the gate applies to a new process: the level the host runs now, and who is excluded.
public struct StartPlan: Sendable {
    /// Each targeted object's fix at the desired level.
    public var desired: DesiredFixes
    /// Every hotpatch of the channel (their targets' build-ids, and jumps to recognise).
    public var known: [Hotpatch]
    /// The configured exclusions.
    public var policy: ExclusionPolicy
}

/// What the gate did, counted since the agent started (status and metrics).
public struct ExecGateCounts: Sendable, Equatable {
    /// Permission events answered.
    public var answered = 0
    /// Openers held until their file was relocated, then patched (or found already patched).
    public var patched = 0
    /// Openers held but let go before patching: the file was only read, or never relocated in
    /// time, or the process ended (the usual path patches those that live on).
    public var letGo = 0
    /// Why the last one let go was (its outcome, or "not a target here" when it mapped nothing targeted).
    public var lastLetGo: String?
    /// Openers allowed at once without a hold: no gate thread free, already traced.
    public var notHeld = 0
}

/// How many holds the gate may start: a token bucket (`capacity` at once, `perSecond` more each
/// second). A hold costs the agent the stepping of the process to its relocation (a few hundred
/// system call stops) on top of the patch the usual path would make anyway, and anyone who may
/// run a targeted program could start thousands a second: beyond the budget an opener is let go
/// at once and patched by the usual path, as without the gate. Generous on purpose (a host where
/// libc is targeted execs a targeted file at every exec): it only bounds a storm.
struct HoldBudget: Sendable, Equatable {
    let capacity: Double
    let perSecond: Double
    private var tokens: Double
    private var last: Monotonic.Instant?

    /// A full bucket.
    init(capacity: Double, perSecond: Double) {
        self.capacity = capacity
        self.perSecond = perSecond
        self.tokens = capacity
    }

    /// Takes one hold's token at `now`; false when none is left.
    mutating func take(now: Monotonic.Instant) -> Bool {
        if let last { tokens = min(capacity, tokens + Double(now.microseconds(since: last)) * perSecond / 1_000_000) }
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// The exec gate: makes a new process run the fix from its first call of a patched function.
///
/// Every file that holds a targeted object is marked for fanotify permission events (an execve of
/// it, and any open). The kernel holds the opener until the gate answers; a gate thread seizes it
/// with ptrace first, then answers at once (the answer never waits for the patch), and runs it from
/// system call stop to system call stop until the dynamic linker has relocated the file and made
/// its relocated data read-only, before any constructor or code of it runs; there the process is
/// patched and let go (`StartHold`). Unrelated files are never marked, so other execs and opens
/// never wait.
///
/// Bounds, so that the gate can never hold the host: an event finds no free gate thread → it is
/// allowed at once; a hold ends after `holdMilliseconds` (the usual path patches the process
/// later); the agent's own opens are allowed at once; and a separate watchdog process kills the
/// agent when the gate's heartbeat stops (a stopped or hung agent), whereupon the kernel allows
/// every waiting opener and detaches every held thread. Nothing armed survives the agent.
///
/// And bounds so that no local user can make it cost the agent much: holds are budgeted
/// (`HoldBudget`: 100 at once, 1,000 a second); an opener found to read the file rather than map it
/// is let go at once on its later opens; events are read 4 KiB at a time (each carries a
/// descriptor the kernel opens in the agent) and a large batch is followed by a 5 ms pause, in
/// which the openers wait (an open storm paces itself to the agent's answers).
public final class ExecGate: Sendable {
    /// Whether the gate works, or why not.
    public let mode: ExecGateMode
    private let instance: Int32
    private let wakeup: WakeupChannel?
    private let shared = GateShared()
    private let broadcast = Broadcast<ProcessID>(bufferingPolicy: .unbounded)

    /// How many gate threads hold and patch new processes at once.
    public static let defaultThreads = 2
    /// The longest a hold waits for its file's relocation before letting the process go.
    static let holdMilliseconds: UInt64 = 500
    /// The heartbeat's period, and how long without one before the watchdog kills the agent.
    static let heartbeatMilliseconds: Int32 = 250
    static let watchdogTimeoutMilliseconds: Int32 = 3_000
    /// The hold budget's burst and rate.
    static let holdBurst: Double = 100
    static let holdsPerSecond: Double = 1_000
    /// A batch of at least this many events is followed by `stormPauseMilliseconds`.
    static let stormBatch = 32
    static let stormPauseMilliseconds: Int32 = 5
    /// A gate thread busy longer than this (a hold and its patch are bounded far below) means a
    /// hang: the heartbeat stops and the watchdog ends the agent.
    static let stuckMilliseconds: UInt64 = 6_000

    /// Starts the gate when `enabled`; never throws, failure is reported through `mode` (no
    /// permission events, or no watchdog process: the gate holds nothing without one).
    public convenience init(enabled: Bool, threads: Int = ExecGate.defaultThreads, cache: ObjectCache = ObjectCache()) {
        self.init(enabled: enabled, threads: threads, cache: cache) { () throws(SystemError) in
            try HangWatchdog(timeoutMilliseconds: ExecGate.watchdogTimeoutMilliseconds)
        }
    }

    /// The gate as above, its watchdog started by `startWatchdog` (a test's stand-in may fail).
    init(enabled: Bool, threads: Int = ExecGate.defaultThreads, cache: ObjectCache = ObjectCache(),
         startWatchdog: @escaping @Sendable () throws(SystemError) -> HangWatchdog) {
        guard enabled else {
            (instance, wakeup, mode) = (-1, nil, .off(reason: "turned off by configuration (exec_gate = false)"))
            broadcast.finish()
            return
        }
        do throws(ExecGateStartFailure) {
            let instance: Int32
            do throws(SystemError) { instance = try Fanotify.createPermissionInstance() } catch {
                throw .noPermissionEvents(error)
            }
            let wakeup: WakeupChannel
            do throws(SystemError) { wakeup = try WakeupChannel() } catch {
                Descriptor.close(instance)
                throw .noPermissionEvents(error)
            }
            let loop = GateLoop(instance: instance, wakeup: wakeup, threads: max(1, threads), cache: cache, shared: shared,
                                broadcast: broadcast)
            // The watchdog is started by the gate's thread (its death signal follows that thread),
            // and the gate works only once it runs: a gate without it could hold every opener of a
            // target for as long as a hung agent lives.
            let started = GateStart()
            do throws(SystemError) { try Threads.startDetached { loop.run(startWatchdog: startWatchdog, started: started) } } catch {
                loop.shutDownWorkers()
                Descriptor.close(instance)
                wakeup.close()
                throw .noPermissionEvents(error)
            }
            if let failure = started.wait() {
                // The thread returned without touching the instance: close it here.
                loop.shutDownWorkers()
                Descriptor.close(instance)
                wakeup.close()
                throw .noWatchdog(failure)
            }
            (self.instance, self.wakeup, self.mode) = (instance, wakeup, .fanotify)
        } catch {
            (instance, wakeup, mode) = (-1, nil, .off(reason: error.reason))
            broadcast.finish()
        }
    }

    /// The level new processes get now; nil until the agent has a verified channel (openers are
    /// then let go at once).
    public func update(_ plan: StartPlan?) { shared.plan.withLock { $0 = plan } }

    /// Marks each of `paths` (files that hold a targeted object) not marked yet, for an execve of
    /// it and for any open. Returns the paths that could not be marked, with why.
    @discardableResult
    public func add(_ paths: [String]) -> [String: SystemError] {
        guard case .fanotify = mode else { return [:] }
        var failures: [String: SystemError] = [:]
        shared.marked.withLock { marked in
            for path in paths {
                do throws(SystemError) {
                    let file = try StartFile(path: path)
                    guard !marked.contains(file) else { continue }
                    try Fanotify.mark(instance, path: path, events: [.openPermission, .openExecPermission])
                    marked.insert(file)
                } catch {
                    failures[path] = error
                }
            }
        }
        return failures
    }

    /// Removes every mark (the targets changed); `add` marks what is still targeted.
    public func removeAll() {
        guard case .fanotify = mode else { return }
        shared.marked.withLock { marked in
            try? Fanotify.removeAllMarks(instance)
            marked.removeAll()
        }
    }

    /// How many files are marked.
    public var markedCount: Int { shared.marked.withLock { $0.count } }

    /// What the gate did so far.
    public var tally: ExecGateCounts { shared.counts.withLock { $0 } }

    /// Each process the gate patched (or found excluded); `takeReport` gives its report.
    public func patchedProcesses() -> AsyncStream<ProcessID> { broadcast.makeStream() }

    /// The report of `pid`'s patch at its start (its user ids read while it was held), once:
    /// whoever asks first (the process's report, or its exit) records it.
    public func takeReport(_ pid: ProcessID) -> HostProcessReport? { shared.reports.withLock { $0.removeValue(forKey: pid) } }

    /// Stops the gate: the thread answers what is pending, closes the instance (the kernel allows
    /// every later open) and ends the watchdog.
    public func stop() { wakeup?.wake() }

    deinit {
        stop()
        if let wakeup { Descriptor.close(wakeup.write) }
    }
}

/// Why the gate could not start.
private enum ExecGateStartFailure: Error {
    case noPermissionEvents(SystemError)
    case noWatchdog(SystemError)

    /// The reason status and the log give.
    var reason: String {
        switch self {
        case let .noPermissionEvents(error): "fanotify permission events are unavailable: \(error.description)"
        case let .noWatchdog(error): "its watchdog process cannot start (\(error.description)), and the gate holds nothing without one"
        }
    }
}

/// How the gate's thread tells the gate's creator that its watchdog runs (nil), or why not.
private final class GateStart: Sendable {
    private let outcome = Mutex<SystemError??>(nil)
    private let reported = DispatchSemaphore(value: 0)

    /// Reports the watchdog's start: nil when it runs.
    func report(_ failure: SystemError?) {
        outcome.withLock { $0 = .some(failure) }
        reported.signal()
    }

    /// Waits for the report.
    func wait() -> SystemError? {
        reported.wait()
        return outcome.withLock { $0 ?? nil }
    }
}

/// What the gate and its threads share: the plan in force, the files marked, the counts, the
/// reports not taken yet.
private final class GateShared: Sendable {
    let plan = Mutex<StartPlan?>(nil)
    /// The files that hold a targeted object, marked on the instance.
    let marked = Mutex<Set<StartFile>>([])
    let counts = Mutex(ExecGateCounts())
    let reports = Mutex<[ProcessID: HostProcessReport]>([:])

    /// Keeps `report` until taken (at most 4,096: the oldest are the agent's to have missed).
    func keep(_ report: HostProcessReport, for pid: ProcessID) {
        reports.withLock { reports in
            if reports.count >= 4_096 { reports.removeAll() }
            reports[pid] = report
        }
    }
}

/// The gate's answering thread and its workers.
private final class GateLoop: Sendable {
    let instance: Int32
    let wakeup: WakeupChannel
    let workers: [GateWorker]
    let shared: GateShared
    let broadcast: Broadcast<ProcessID>
    /// Workers free to take an event.
    let idle: Mutex<[Int]>
    /// Whether `instance` is still open: a worker answers under this lock, and the loop closes the
    /// instance under it, so an answer never goes to a descriptor number reused since.
    let instanceOpen = Mutex(true)
    /// Holds left to start (answering thread only, but kept locked for Sendable).
    let budget = Mutex(HoldBudget(capacity: ExecGate.holdBurst, perSecond: ExecGate.holdsPerSecond))
    /// Openers (by thread id) found to read a targeted file, not map it: never held again.
    let readers = Mutex<Set<ProcessID>>([])
    /// Their later events, answered together when `slowLaneDue` comes: an opener that reads a
    /// targeted file in a loop then opens it about 200 times a second, whatever its pace, and costs
    /// the agent next to nothing (each answer is a read of an event, a write, a close).
    let slowLane = Mutex<(requests: [Fanotify.PermissionRequest], due: Monotonic.Instant?)>(([], nil))

    init(instance: Int32, wakeup: WakeupChannel, threads: Int, cache: ObjectCache, shared: GateShared,
         broadcast: Broadcast<ProcessID>) {
        self.instance = instance
        self.wakeup = wakeup
        self.workers = (0..<threads).map { GateWorker(index: $0, cache: cache) }
        self.shared = shared
        self.broadcast = broadcast
        self.idle = Mutex(Array(0..<threads))
    }

    func shutDownWorkers() { workers.forEach { $0.thread.shutdown() } }

    /// Starts the watchdog (reported through `started`; without one the thread returns at once,
    /// leaving the instance to the gate's creator), then answers events until woken to stop.
    func run(startWatchdog: () throws(SystemError) -> HangWatchdog, started: GateStart) {
        // Forked before the thread is raised, so the watchdog runs at normal priority.
        let watchdog: HangWatchdog
        do throws(SystemError) { watchdog = try startWatchdog() } catch {
            started.report(error)
            return
        }
        started.report(nil)
        // Raised like a stop window: the answer is what every opener of a target waits for, and
        // the heartbeat must not starve on a loaded host.
        _ = SchedulingPriority.raise()
        defer {
            // Answer whatever is still pending, then close: the kernel allows every later open.
            answerSlowLane()
            answerAllPending()
            instanceOpen.withLock { open in
                open = false
                Descriptor.close(instance)
            }
            Descriptor.close(wakeup.read)
            watchdog.stop()
            shutDownWorkers()
            broadcast.finish()
        }
        var buffer = [UInt8](repeating: 0, count: 4 * 1024)
        while true {
            if !anyWorkerStuck { watchdog.beat() }
            let due = slowLane.withLock { $0.due }
            let timeout = due.map { Int32(min(UInt64(ExecGate.heartbeatMilliseconds), Monotonic.now < $0 ? $0.microseconds(since: Monotonic.now) / 1000 + 1 : 0)) }
                ?? ExecGate.heartbeatMilliseconds
            guard let ready = try? Descriptor.waitReadable([instance, wakeup.read], timeoutMilliseconds: timeout,
                                                           subject: Fanotify.subject) else { return }
            if ready[1] { return }
            if let due, Monotonic.now >= due { answerSlowLane() }
            guard ready[0] else { continue }
            let requests: [Fanotify.PermissionRequest]
            do throws(SystemError) { requests = try Fanotify.readPermissionRequests(instance, into: &buffer) ?? [] } catch { return }
            for request in requests { dispatch(request) }
            if requests.count >= ExecGate.stormBatch {
                // A storm of opens: let the kernel queue them a moment (their openers wait).
                guard let woken = try? Descriptor.waitReadable([wakeup.read], timeoutMilliseconds: ExecGate.stormPauseMilliseconds,
                                                               subject: Fanotify.subject), !woken[0] else { return }
            }
        }
    }

    /// Hands `request` to a free worker, or answers it at once.
    private func dispatch(_ request: Fanotify.PermissionRequest) {
        guard request.descriptor >= 0 else { return }  // an overflow record: nothing waits on it
        if let thread = request.thread, Self.isAgentThread(thread) {
            answer(request)
            return
        }
        // A second event of a process held already (the open that follows its exec's, a library
        // opened while the executable is relocated): its hold covers it, and it is no opener the
        // gate failed to hold.
        if let thread = request.thread, request.events == .openPermission, StartHolds.contains(thread) {
            answer(request)
            return
        }
        guard let thread = request.thread,
              shared.plan.withLock({ $0 != nil }),
              !readers.withLock({ $0.contains(thread) }),
              budget.withLock({ $0.take(now: Monotonic.now) }),
              let index = idle.withLock({ $0.popLast() }) else {
            if let thread = request.thread, readers.withLock({ $0.contains(thread) }), enterSlowLane(request) { return }
            allow(request, held: false)
            return
        }
        let worker = workers[index]
        worker.busySince.withLock { $0 = Monotonic.now }
        worker.thread.submit { [self] in
            defer {
                worker.busySince.withLock { $0 = nil }
                idle.withLock { $0.append(index) }
            }
            let report = worker.serve(request, targets: shared.marked.withLock { $0 }, plan: { self.shared.plan.withLock { $0 } },
                                      answer: { self.answer(request) },
                                      counts: shared, onReader: { self.noteReader(thread) })
            if let report { broadcast.yield(report) }
        }
    }

    /// Queues a known reader's event for the next slow-lane answer; false when the lane is full
    /// (256 waiting: each holds a descriptor), and the caller answers at once.
    private func enterSlowLane(_ request: Fanotify.PermissionRequest) -> Bool {
        slowLane.withLock { lane in
            guard lane.requests.count < 256 else { return false }
            lane.requests.append(request)
            if lane.due == nil { lane.due = Monotonic.now.adding(microseconds: UInt64(ExecGate.stormPauseMilliseconds) * 1000) }
            return true
        }
    }

    /// Answers every event in the slow lane.
    private func answerSlowLane() {
        let waiting = slowLane.withLock { lane in
            defer { lane = ([], nil) }
            return lane.requests
        }
        for request in waiting { allow(request, held: false) }
    }

    /// Remembers a reader (bounded: the set starts over when it holds 4,096).
    private func noteReader(_ thread: ProcessID) {
        readers.withLock { readers in
            if readers.count >= 4_096 { readers.removeAll() }
            readers.insert(thread)
        }
    }

    /// Allows `request` and closes its descriptor.
    private func answer(_ request: Fanotify.PermissionRequest) {
        instanceOpen.withLock { open in
            // Closed: the kernel has allowed the open already.
            if open { try? Fanotify.answer(instance, descriptor: request.descriptor, allow: true) }
            Descriptor.close(request.descriptor)
        }
        shared.counts.withLock { $0.answered += 1 }
    }

    private func allow(_ request: Fanotify.PermissionRequest, held: Bool) {
        answer(request)
        if !held { shared.counts.withLock { $0.notHeld += 1 } }
    }

    /// Allows every event still pending (the gate is stopping).
    private func answerAllPending() {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while let requests = (try? Fanotify.readPermissionRequests(instance, into: &buffer)) ?? nil {
            for request in requests where request.descriptor >= 0 { allow(request, held: false) }
        }
    }

    /// Whether a worker has been busy far longer than any hold and patch can take.
    private var anyWorkerStuck: Bool {
        let now = Monotonic.now
        return workers.contains { worker in
            worker.busySince.withLock { since in since.map { now.microseconds(since: $0) > ExecGate.stuckMilliseconds * 1000 } ?? false }
        }
    }

    /// Whether `thread` is one of the agent's own (its reads of the targets).
    private static func isAgentThread(_ thread: ProcessID) -> Bool {
        thread == .current || access("/proc/self/task/\(thread.rawValue)", F_OK) == 0
    }
}

/// One gate thread: seizes the opener, answers, holds it to its file's relocation, patches it.
private final class GateWorker: @unchecked Sendable {
    // @unchecked: `patcher` is used on `thread` alone; `busySince` is locked.
    let thread: TracerThread
    let patcher: StartPatcher
    let cache: ObjectCache
    let busySince = Mutex<Monotonic.Instant?>(nil)

    init(index: Int, cache: ObjectCache) {
        thread = TracerThread(name: "hotpatch-gate-\(index)")
        patcher = StartPatcher(cache: cache)
        self.cache = cache
    }

    /// Serves one event on this worker's thread; the event is answered on every path, right after
    /// the seize (or at once when there is nothing to hold).
    func serve(_ request: Fanotify.PermissionRequest, targets: Set<StartFile>, plan: () -> StartPlan?, answer: () -> Void,
               counts shared: GateShared, onReader: () -> Void) -> ProcessID? {
        var hold: StartHold?
        if let tid = request.thread, let pid = try? ProcFS.process(ofThread: ThreadID(tid.rawValue)),
           let file = try? StartFile(path: "/proc/self/fd/\(request.descriptor)") {
            hold = try? StartHold.seize(thread: ThreadID(tid.rawValue), of: pid, file: file, targets: targets,
                                        atExec: request.events.contains(.openExecPermission), cache: cache)
        }
        answer()
        guard let hold else {
            shared.counts.withLock { $0.notHeld += 1 }
            return nil
        }
        defer { hold.release() }
        // A hold runs the patcher's code as a pass does (and its pass skips the held process): the
        // idle release must wait for quiet after it too, or that code stays mapped.
        defer { IdleMemoryRelease.shared.noteActivity() }
        let deadline = Monotonic.now.adding(microseconds: ExecGate.holdMilliseconds * 1000)
        let outcome = hold.runToRelocated(deadline: deadline)
        if outcome == .notMapped { onReader() }
        func patched() -> HostProcessReport? {
            plan().flatMap { plan in patcher.patch(hold, desired: plan.desired, known: plan.known, excluding: plan.policy) }
        }
        var report = outcome == .relocated ? patched() : nil
        // A dlopen relocates an object that depends on the file after it: each such targeted
        // object is patched at its own mark, still before any constructor; the last report covers
        // every object patched in the hold.
        while report != nil, hold.awaitsAnotherTarget, hold.runToNextRelocated(deadline: deadline) == .relocated,
              let next = patched() {
            report = next
        }
        guard let report else {
            let why = outcome == .relocated ? "relocated, but nothing targeted to patch" : "\(outcome)"
            shared.counts.withLock {
                $0.letGo += 1
                $0.lastLetGo = why
            }
            return nil
        }
        // Kept before the release: once let go, a process a broken fix kills may exit before the
        // agent takes the report, and its exit looks the report up.
        shared.keep(report, for: hold.pid)
        shared.counts.withLock {
            switch report.result {
            case .excluded:
                $0.patched += 1
            case let .reconciled(patched):
                switch patched.outcome {
                case .applied, .alreadyApplied:
                    $0.patched += 1
                default:
                    // Refused in the hold (the report says why, as a pass's would): it runs on unfixed.
                    $0.letGo += 1
                    $0.lastLetGo = "\(patched.outcome)"
                }
            }
        }
        return hold.pid
    }
}
