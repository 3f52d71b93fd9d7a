import AgentProtocol
import Artifact
import Engine
import Foundation
import LinuxSystem
import Logging
import ServiceLifecycle
import UnixSignals

/// Wakes the agent's loop early: a change in the channel directory, or the timer.
actor CycleTrigger {
    private var pending = false
    private var waiter: CheckedContinuation<Void, Never>?

    /// Asks for a cycle now.
    func signal() {
        if let waiter {
            self.waiter = nil
            waiter.resume()
        } else {
            pending = true
        }
    }

    /// Returns after `seconds`, or earlier when signalled (or when the task is cancelled).
    func wait(seconds: Double) async {
        if pending {
            pending = false
            return
        }
        let timer = Task {
            try? await Task.sleep(for: .seconds(seconds))
            if !Task.isCancelled { self.signal() }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                waiter = continuation
            }
        } onCancel: {
            Task { await self.signal() }
        }
        timer.cancel()
        pending = false
    }
}

/// Runs the agent's cycles: the first at start (then READY=1), then one every poll interval, at
/// once when the channel directory changes, sooner while some process is busy (backoff), and
/// while a publication is incomplete (`Agent.channelRecheckSeconds`).
public final class AgentLoopService: Service, Sendable {
    private let agent: Agent
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let trigger = CycleTrigger()
    /// Beaten before every cycle and every wait: what the watchdog service pets systemd on.
    public let heartbeat = LoopHeartbeat()
    /// How long one cycle may take before the loop counts as wedged: the unit's start timeout,
    /// since the first cycle (which may install a baseline through dpkg) is the longest.
    public static let cycleAllowance: Duration = .seconds(15 * 60)

    /// What the first cycle waits for (the process watch service declares it), if anything.
    private let watches: WatchReadiness?
    /// The longest the first cycle waits for `watches`.
    private let watchesLimit: Duration
    /// The default of that limit: the watches' setup takes milliseconds.
    public static let watchReadinessLimit: Duration = .seconds(10)

    /// A loop over `agent`, reporting to systemd through `notifier`; its first cycle waits for
    /// `watches`, at most `watchesLimit`.
    public init(agent: Agent, notifier: SystemdNotifier, logger: Logger, watches: WatchReadiness? = nil,
                watchesLimit: Duration = AgentLoopService.watchReadinessLimit) {
        self.agent = agent
        self.notifier = notifier
        self.logger = logger
        self.watches = watches
        self.watchesLimit = watchesLimit
    }

    /// Asks for a cycle now (SIGHUP after a reload).
    public func wake() async { await trigger.signal() }

    public func run() async throws {
        let directory = await agent.configuration.channelDirectory
        let watcher: ChannelDirectoryWatcher?
        do {
            watcher = try ChannelDirectoryWatcher(directory: directory)
        } catch {
            watcher = nil
            logger.warning("Failed to watch \(directory) for changes, polling only: \(error)")
        }
        let trigger = self.trigger
        let forward = Task {
            guard let watcher else { return }
            for await _ in watcher.changes() { await trigger.signal() }
        }
        defer {
            forward.cancel()
            watcher?.stop()
        }
        heartbeat.beat(allowing: Self.cycleAllowance)
        if let watches, !(await watches.wait(atMost: watchesLimit)) {
            if Task.isCancelled { return }
            logger.warning("The process watch was not in place after \(watchesLimit); patching without it: a process that dies of a hotpatch before it is in place is not judged")
        }
        await agent.runCycle()
        // READY=1 once the kernel is patched too: services ordered after the agent start on it.
        await agent.kernelStepFinished()
        let first = await agent.status()
        _ = notifier.ready(status: StatusBuilder.summary(first))
        logger.log(event: .started, "Started: \(StatusBuilder.summary(first))")
        await cancelWhenGracefulShutdown {
            var retryDelay = 1.0
            while !Task.isCancelled {
                let pending = await self.agent.hasPendingProcesses
                let interval = Double(await self.agent.configuration.pollIntervalSeconds)
                var wait = pending ? min(retryDelay, interval) : interval
                retryDelay = pending ? min(retryDelay * 2, 60) : 1
                // A publication seen incomplete is checked again soon, even if nothing the watcher
                // sees changes (a sync tool's writes into subfolders), and refused on time.
                if let recheck = await self.agent.channelRecheckSeconds { wait = min(wait, recheck) }
                self.heartbeat.beat(allowing: .seconds(wait) + Self.cycleAllowance)
                await trigger.wait(seconds: wait)
                if Task.isCancelled { break }
                self.heartbeat.beat(allowing: Self.cycleAllowance)
                let status = await self.agent.runCycle()
                _ = self.notifier.status(StatusBuilder.summary(status))
            }
        }
        _ = notifier.stopping()
        logger.log(event: .stopping, "Stopping")
        // A kernel transition in flight ends (completes, or is reverted once stalled) before the
        // agent does, as when it ran inside the cycle.
        await agent.kernelStepFinished()
    }
}

/// Patches new processes soon after exec, and running ones soon after they map a targeted object
/// (a library `dlopen`ed after the hotpatch is in force), and watches patched ones die: netlink
/// process events when the kernel lets us subscribe, else a periodic scan; fanotify marks on the
/// targeted files when the kernel lets us make them, else the next full pass (logged, and status
/// says which). It also follows the kernel log's fault reports, the health check's witness of a
/// real crash.
public final class ProcessWatchService: Service, Sendable {
    private let agent: Agent
    private let logger: Logger
    /// Seconds between scans when process events are not available.
    public let scanIntervalSeconds: Double

    /// Declared once the process events and the kernel's fault reports are followed.
    private let watches: WatchReadiness?

    /// A watcher feeding `agent`, which declares `watches` ready once its watches are in place.
    public init(agent: Agent, logger: Logger, scanIntervalSeconds: Double = 2, watches: WatchReadiness? = nil) {
        self.agent = agent
        self.logger = logger
        self.scanIntervalSeconds = scanIntervalSeconds
        self.watches = watches
    }

    public func run() async throws {
        // Each mode is said as soon as it is known, before the next watch is set up (the exec gate
        // forks its watchdog), and the first cycle waits for all (`watches`): the first status
        // (READY=1, agentctl) already tells how new processes are found.
        let watcher = ProcessEventWatcher()
        defer { watcher.stop() }
        // The stream is taken at once: an event the watcher receives before a stream exists is dropped.
        let processEvents = watcher.events()
        let subscribed: Bool
        if case .scan = watcher.mode { subscribed = false } else { subscribed = true }
        await agent.setProcessWatch(subscribed ? "netlink" : "scan")
        // The kernel's own fault reports tell a real crash from a signal someone sent; the log is
        // read from the moment it is opened.
        let faults = KernelFaultLog()
        defer { faults.stop() }
        await agent.useKernelFaultLog(faults)
        // The other streams are taken at once too: nothing they say is lost to the setup that follows.
        let mappings = MappingWatch()
        defer { mappings.stop() }
        let mappingEvents = mappings.events()
        await agent.setMappingWatch(mappings.mode.statusName)
        let gate = ExecGate(enabled: await agent.configuration.execGate, cache: agent.objectCache)
        defer { gate.stop() }
        let patchedAtStart = gate.patchedProcesses()
        await agent.useExecGate(gate)
        // The health check can now see a patched process die and read why, and the first status
        // tells every mode: the first cycle may patch.
        watches?.declareReady()
        if case let .scan(reason) = watcher.mode {
            logger.notice("Process events unavailable (\(reason)); scanning every \(scanIntervalSeconds) s instead")
        }
        if case let .scan(reason) = mappings.mode {
            logger.notice("Cannot watch the targeted files (\(reason)); a library a running process loads later is patched at the next full pass instead")
        }
        if case let .off(reason) = gate.mode {
            logger.notice("Exec gate off (\(reason)): a new process is patched soon after it starts, and may run unfixed code until then")
        }
        let followUps = FollowUps(agent: agent)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await followUps.run() }
                group.addTask { await self.followProcessEvents(watcher, events: processEvents, followUps: followUps) }
                group.addTask {
                    for await pid in patchedAtStart { await self.agent.processPatchedAtStart(pid) }
                }
                let marks = MarkKeeper(watch: mappings, gate: gate, cache: self.agent.objectCache, logger: self.logger)
                group.addTask { await marks.follow(self.agent) }
                guard case .fanotify = mappings.mode else { return }
                group.addTask { await self.followMappings(mappingEvents, followUps: followUps) }
            }
        }
    }

    /// Exec events ask for looks at the new process; exits go to the health check. Scans instead
    /// when process events are unavailable or stop. `events` is `watcher`'s stream, taken as it
    /// subscribed.
    private func followProcessEvents(_ watcher: ProcessEventWatcher, events: AsyncStream<ProcessEvent>,
                                     followUps: FollowUps) async {
        if case .scan = watcher.mode {
            await scanUntilCancelled()
            return
        }
        for await event in events {
            switch event {
            case let .exec(pid):
                // The dynamic linker maps libraries just after exec: look now and again shortly.
                await followUps.note(pid, .exec)
            case let .exit(pid, _, signal):
                await agent.processExited(pid, signal: signal)
            case .overrun:
                await agent.rescan()
            }
        }
        if !Task.isCancelled {
            // The event stream ended on its own: fall back to scanning.
            await agent.setProcessWatch("scan")
            logger.warning("Process events stopped; scanning every \(scanIntervalSeconds) s instead")
            await scanUntilCancelled()
        }
    }

    /// How long after a pass over every process that a queue overflow caused, another overflow
    /// waits for its own pass. A storm of opens overflows the kernel's queue at every read; one
    /// pass per interval still finds what the lost events named.
    static let overflowRescanIntervalMilliseconds = 250

    /// Opens of the targeted files ask for looks at the process that made them. Overflows (events
    /// lost) ask for a pass over every process: at most one per interval, the last one kept.
    /// `events` is the mapping watch's stream, taken as it started.
    private func followMappings(_ events: AsyncStream<MappingEvent>, followUps: FollowUps) async {
        let rescans = OverflowRescans(agent: agent, intervalMilliseconds: Self.overflowRescanIntervalMilliseconds)
        for await event in events {
            switch event {
            case let .opened(pid): await followUps.note(pid, .open)
            case .overflow: await rescans.request()
            }
        }
        await rescans.cancel()
        if !Task.isCancelled {
            await agent.setMappingWatch("scan")
            logger.warning("Stopped watching the targeted files; a library a running process loads later is patched at the next full pass instead")
        }
    }

    private func scanUntilCancelled() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(scanIntervalSeconds))
            if Task.isCancelled { break }
            await agent.rescan()
        }
    }
}

/// Passes over every process asked for by queue overflows: the first at once, then at most one
/// per interval; requests meanwhile are folded into one pass at the interval's end, so none is lost.
actor OverflowRescans {
    private let agent: Agent
    private let interval: Duration
    private var lastStarted: ContinuousClock.Instant?
    private var pending: Task<Void, Never>?

    /// Rescans through `agent`, at most one per `intervalMilliseconds`.
    init(agent: Agent, intervalMilliseconds: Int) {
        self.agent = agent
        self.interval = .milliseconds(intervalMilliseconds)
    }

    /// Asks for a pass over every process: now when the last one is an interval old, else once at
    /// the interval's end (one pass for every request until then).
    func request() async {
        guard pending == nil else { return }
        let now = ContinuousClock.now
        if let last = lastStarted, now < last + interval {
            pending = Task { [agent, last, interval] in
                try? await Task.sleep(until: last + interval, clock: .continuous)
                guard !Task.isCancelled else { return }
                self.started()
                await agent.rescan()
            }
            return
        }
        lastStarted = now
        await agent.rescan()
    }

    private func started() {
        lastStarted = ContinuousClock.now
        pending = nil
    }

    /// Drops a pass not started yet (the watch has ended).
    func cancel() {
        pending?.cancel()
        pending = nil
    }
}

/// Looks at processes again when `FollowUpSchedule` says, one at a time through the agent (which
/// serialises its patching anyway).
actor FollowUps {
    private let look: @Sendable (ProcessID) async -> Void
    private var schedule = FollowUpSchedule()
    private let trigger = CycleTrigger()

    /// Follow-ups of `agent`: each look reconciles that one process.
    init(agent: Agent) { self.init { await agent.processStarted($0) } }

    /// Follow-ups that call `look` for each look, one at a time.
    init(look: @escaping @Sendable (ProcessID) async -> Void) { self.look = look }

    /// A sign that `pid` may just have mapped a targeted object.
    func note(_ pid: ProcessID, _ sign: FollowUpSchedule.Sign) async {
        let next = schedule.nextLook
        schedule.note(pid, sign, at: .now)
        // Only a look earlier than the one waited for needs the loop awake: a storm of signs whose
        // looks are covered already costs no wake-up.
        if schedule.nextLook != next { await trigger.signal() }
    }

    /// Takes the looks as they fall due, until cancelled.
    func run() async {
        while !Task.isCancelled {
            for pid in schedule.takeDue(now: .now) { await look(pid) }
            guard let next = schedule.nextLook else {
                await trigger.wait(seconds: 3600)
                continue
            }
            let wait = ContinuousClock.now.duration(to: next)
            if wait > .zero { await trigger.wait(seconds: Double(wait.components.seconds) + Double(wait.components.attoseconds) * 1e-18) }
        }
    }
}

/// Keeps the mapping watch's and the exec gate's marks on the files that hold a targeted object,
/// and the gate's plan on the level in force: after every cycle it marks what is new, and when
/// the targets change it starts over from them.
final class MarkKeeper: @unchecked Sendable {
    // @unchecked: used by one task at a time (the marking task), its work done on a global queue.
    private let watch: MappingWatch
    private let gate: ExecGate
    private let logger: Logger
    private var files: TargetedFiles
    private var reportedCount = 0

    init(watch: MappingWatch, gate: ExecGate, cache: ObjectCache, logger: Logger) {
        self.watch = watch
        self.gate = gate
        files = TargetedFiles(cache: cache)
        self.logger = logger
    }

    /// Refreshes the marks after every status `agent` publishes (every cycle), until cancelled.
    func follow(_ agent: Agent) async {
        let (statuses, continuation) = AsyncStream.makeStream(of: AgentStatus.self, bufferingPolicy: .bufferingNewest(1))
        defer { continuation.finish() }
        await agent.onStatus { continuation.yield($0) }
        continuation.yield(await agent.status())
        for await _ in statuses {
            let targets = await agent.targetedObjects
            let listed = await agent.processes().map { ProcessID($0.pid) }
            gate.update(await agent.startPlan)
            // Off the cooperative pool: reading /proc and ELF notes blocks.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    self.refresh(targets: targets, listed: listed)
                    done.resume()
                }
            }
        }
    }

    private func refresh(targets: [HotpatchTarget], listed: [ProcessID]) {
        if files.retarget(targets) {
            watch.removeAll()
            gate.removeAll()
        }
        let wanted = files.files(listed: listed)
        watch.add(wanted)
        gate.add(wanted)
        let count = max(watch.markedCount, gate.markedCount)
        guard count != reportedCount else { return }
        reportedCount = count
        let files = count == 1 ? "1 file that holds" : "\(count) files that hold"
        logger.info("Watching \(files) a targeted object: a running process that loads one is patched as it maps it")
    }
}

/// SIGHUP: re-read the configuration and run a cycle with it (RELOADING=1 … READY=1).
public final class ReloadService: Service, @unchecked Sendable {
    private let agent: Agent
    private let loop: AgentLoopService
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let reload: () throws -> AgentConfiguration

    /// A service that reloads `agent` with what `reload` reads, then wakes `loop`.
    public init(agent: Agent, loop: AgentLoopService, notifier: SystemdNotifier, logger: Logger,
         reload: @escaping () throws -> AgentConfiguration) {
        self.agent = agent
        self.loop = loop
        self.notifier = notifier
        self.logger = logger
        self.reload = reload
    }

    /// Handles SIGHUP until a graceful shutdown.
    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                _ = self.notifier.reloading()
                do {
                    let configuration = try self.reload()
                    await self.agent.reload(configuration)
                    await self.loop.wake()
                } catch {
                    self.logger.log(event: .reloaded, level: .error, "Failed to reload the configuration, keeping the current one: \(error)",
                                    metadata: ["reason": "\(error)"])
                }
                _ = self.notifier.ready(status: StatusBuilder.summary(await self.agent.status()))
            }
        }
    }
}
