import AgentProtocol
import Artifact
import Engine
import Foundation
import LinuxSystem
import Logging

/// The daemon's heart, sequencing its parts: it verifies the channel (`ChannelStanding`), installs
/// releases (`ReleaseInstallation`), brings every process that maps a targeted object to the
/// desired hotpatch (`HostPatcher`, `ProcessLedger`), watches patched processes' health
/// (`HealthWatch`), builds the status (`StatusBuilder`) and answers the control socket. It holds
/// the lock around patching, saves the state and logs what the parts return. The truth about what
/// is applied is always read from the processes; the state file holds only what cannot be read
/// back (rollback protection, baseline, boot, holds, quarantine, enrollment, history).
public actor Agent: AgentControlHandler {
    /// The configuration in force (replaced on reload, but for the keys that need a restart).
    public private(set) var configuration: AgentConfiguration
    private let logger: Logger
    private let store: StateStore
    private var state: AgentState
    /// Set when the state file could not be read: the agent then only reports.
    private let stateProblem: String?
    /// Replaced on reload when its options change (between cycles, under the lock).
    private var patcher: HostPatcher
    /// Facts about mapped files, read once per file and shared by everything that looks at
    /// processes (the passes, the exec gate, the mark keeper): libc's symbols are parsed once.
    public nonisolated let objectCache = ObjectCache()
    private let workers: Int
    private let version: String
    private let bootID: String
    /// The verified index in force: the channel's, or the last one verified (kept in the store
    /// across restarts) while the channel is missing, expired, rolled back or unreadable.
    private var channel: VerifiedChannel?
    /// Where the agent stands with its channel after the last check (nil before the first).
    private var standing: ChannelStanding?
    /// When the index was first seen missing (RFC 3339), while it stays missing.
    private var indexMissingSince: String?
    /// When the channel was first found mid-publication, while every check since found it so, and
    /// how many checks found it so (they back off).
    private var incompleteSince: Date?
    private var incompleteChecks = 0
    /// Why the store's last verified index could not be brought back at start, if it could not.
    private var keptChannelProblem: ChannelRefusal?
    private var lastCheck: Date?
    private var ledger = ProcessLedger()
    private var plan: ReleasePlan?
    private var installation: ReleaseInstallation
    /// Brings the fixed packages of the hotpatch in force to the disk, after its patch pass.
    private let carriedPackages: CarriedPackageInstallation
    /// How new processes are noticed ("netlink" or "scan"); set by the process watcher.
    public private(set) var processWatch = "scan"
    private var statusListeners: [@Sendable (AgentStatus) -> Void] = []
    /// Patching work is serialised: an actor is re-entrant at every await, and two reconciles of
    /// the same process from two tracer threads would fight over ptrace.
    private var busy = false
    /// When the heap may next be trimmed after a pass over a few processes (see `reconcileAll`).
    private var nextHeapTrim = Monotonic.now
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// What the crash health check reads and remembers (see `processExited`).
    private var health = HealthWatch()
    /// The running kernel's live patch after the last cycle (nil before the first).
    private var kernelStatus: AgentStatus.Kernel?
    /// The kernel fix (`KernelLivePatching.quarantineKey`) that failed to load, and the channel
    /// version it failed with: not loaded again until the channel changes or an `apply`.
    private var kernelFailedAttempt: (key: String, channelVersion: Int?)?
    /// Where the kernel's files are (the root in production).
    private let kernelPaths = KernelPaths()
    /// While a cycle's kernel step runs (it may wait minutes for a transition): when it began, and
    /// the releases it works with, so status reads the transition live meanwhile.
    private var kernelStepInFlight: (since: Date, releases: [HotpatchRelease])?
    /// The kernel step in flight (`startKernelStep`), and whether a cycle asked for another.
    private var kernelStep: Task<Void, Never>?
    private var kernelStepAgain = false
    /// While a cycle's dpkg runs: the release whose packages it installs, and since when.
    private var installingPackages: (release: String, since: Date)?

    /// One kernel cycle, run off the actor: `KernelLivePatching.run` on this host's kernel.
    typealias KernelCycle = @Sendable (_ desired: Hotpatch?, _ releases: [HotpatchRelease], _ skipping: Set<String>,
                                       _ quarantined: [String: String], _ notRetrying: String?, _ stallSeconds: Double) -> KernelCycleResult
    private let kernelCycle: KernelCycle

    /// Opens the state (a corrupt file is reported, never reset) and prepares the patcher.
    public init(configuration: AgentConfiguration, logger: Logger, version: String, workers: Int? = nil) {
        let paths = KernelPaths()
        self.init(configuration: configuration, logger: logger, version: version, workers: workers) {
            desired, releases, skipping, quarantined, notRetrying, stall in
            KernelLivePatching.run(desired: desired, releases: releases, skipping: skipping, quarantined: quarantined,
                                   notRetrying: notRetrying, paths: paths, stallSeconds: stall,
                                   mayLoadModules: KernelLivePatching.agentHasSysModule())
        }
    }

    /// `init(configuration:logger:version:workers:)` with `kernelCycle` in place of the host's
    /// kernel (tests).
    init(configuration: AgentConfiguration, logger: Logger, version: String, workers: Int? = nil, kernelCycle: @escaping KernelCycle) {
        self.kernelCycle = kernelCycle
        self.configuration = configuration
        self.logger = logger
        self.version = version
        // systemd's StateDirectory= makes it under a unit; in the foreground we do.
        try? FileManager.default.createDirectory(atPath: configuration.stateDirectory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: Int(StateStore.directoryMode)])
        store = StateStore(directory: configuration.stateDirectory)
        var problem: String?
        do {
            state = try store.load()
        } catch {
            state = AgentState()
            problem = "\(error)"
        }
        stateProblem = problem
        bootID = (try? ProcFS.bootID()) ?? "unknown"
        if problem == nil { (channel, keptChannelProblem) = Self.loadKeptChannel(configuration, logger: logger) }
        self.workers = workers ?? HostPatcher.defaultWorkerCount
        patcher = HostPatcher(workers: self.workers, options: Self.patchOptions(configuration), cache: objectCache)
        installation = ReleaseInstallation(
            actions: .host(stateDirectory: configuration.stateDirectory),
            bootID: bootID, rebootRequiredFile: configuration.rebootRequiredFile)
        carriedPackages = .host(stateDirectory: configuration.stateDirectory)
    }

    private static func patchOptions(_ configuration: AgentConfiguration) -> PatchOptions {
        var options = PatchOptions()
        options.strictStackCheck = configuration.strictStackCheck
        return options
    }

    /// Calls `listener` with the status after every cycle (sd_notify STATUS=, metrics).
    public func onStatus(_ listener: @escaping @Sendable (AgentStatus) -> Void) {
        statusListeners.append(listener)
    }

    /// Records how new processes are noticed.
    public func setProcessWatch(_ mode: String) { processWatch = mode }

    /// How running processes that map a target later are noticed ("fanotify" or "scan"); set by the process watcher.
    public private(set) var mappingWatch = "scan"

    /// Records how running processes that map a target later are noticed.
    public func setMappingWatch(_ mode: String) { mappingWatch = mode }

    /// The exec gate, once the process watcher has started it (status reads its counts).
    private var execGate: ExecGate?

    /// Records the exec gate whose mode and counts status shows.
    public func useExecGate(_ gate: ExecGate) { execGate = gate }

    /// What the exec gate applies to a new process now: the level in force for the verified
    /// channel's hotpatches; nil without a channel, hotpatches or readable state (openers are then
    /// let go at once).
    public var startPlan: StartPlan? {
        guard let channel, stateProblem == nil, !channel.hotpatches.isEmpty else { return nil }
        let plan = currentPlan(channel)
        return StartPlan(desired: plan.fixes, known: channel.hotpatches,
                         policy: ExclusionPolicy(executableGlobs: configuration.excludeExecutables, units: configuration.excludeUnits))
    }

    /// A new process the exec gate patched at its start (or found excluded): its report recorded
    /// like a look at that one process, with the user ids read while it was held; nothing when
    /// it was recorded already.
    public func processPatchedAtStart(_ pid: ProcessID) async {
        guard let start = execGate?.takeReport(pid) else { return }
        await record(start)
    }

    /// Records one process the exec gate patched.
    private func record(_ start: HostProcessReport) async {
        await lock()
        defer { unlock() }
        guard let channel, stateProblem == nil else { return }
        record([start], fullPass: false, plan: currentPlan(channel))
    }

    /// Replaces the configuration (SIGHUP). Keys that cannot change while the agent runs keep
    /// their running values and are named in a warning; returns them. A new `strict_stack_check`
    /// takes a new patcher, used from the next reconcile on (one in flight keeps its own).
    @discardableResult
    public func reload(_ new: AgentConfiguration) -> [ConfigurationKey] {
        let (reloaded, refused) = configuration.reloaded(to: new)
        if let line = configuration.reloadRefusal(refused, new: new) {
            logger.log(event: .reloaded, level: .warning, "\(line)",
                       metadata: ["reason": "needs a restart: \(refused.map(\.rawValue).joined(separator: ", "))"])
        }
        if reloaded.strictStackCheck != configuration.strictStackCheck {
            patcher = HostPatcher(workers: workers, options: Self.patchOptions(reloaded), cache: patcher.cache)
        }
        configuration = reloaded
        installation.rebootRequiredFile = reloaded.rebootRequiredFile
        logger.log(event: .reloaded, "Configuration reloaded")
        return refused
    }

    /// The options the patcher runs with.
    var patchOptionsInForce: PatchOptions { patcher.options }

    // MARK: The cycle

    /// One full cycle: verify, install, reconcile every process, save, report. Returns the status.
    @discardableResult
    public func runCycle() async -> AgentStatus { await runCycle(evenWhileLanding: false) }

    /// `runCycle()`; with `evenWhileLanding`, the whole cycle runs on the channel in force even
    /// while a publication is landing (an administrator's command changed the state: it must take
    /// effect and be saved now, not when the publication completes).
    @discardableResult
    private func runCycle(evenWhileLanding: Bool) async -> AgentStatus {
        await lock()
        defer { unlock() }
        if let stateProblem {
            logger.log(event: .verificationFailed, level: .critical,
                       "State file is unreadable; not patching until it is repaired: \(stateProblem)", metadata: ["reason": "\(stateProblem)"])
            return publish()
        }
        log(installation.confirmRebootIfBooted(&state))
        let firstCheck = standing == nil
        verifyChannel()
        if case .incomplete? = standing?.check, !firstCheck, !evenWhileLanding {
            // A publication is landing and the channel in force has not changed, so neither has the
            // rest of the cycle's work: it runs once the publication completes, or at the latest
            // when it is refused (`ChannelStanding.settleSeconds`). The first cycle runs it all, on
            // the index kept in the store. What changed the state above (a reboot confirmed) is saved.
            save()
            return publish()
        }
        if let channel {
            log(installation.adoptBaselineOnFirstStart(channel, state: &state))
            log(installation.installReleases(currentPlan(channel), channel: channel, state: &state, now: Date()))
            // A copy: the state is saved (and the reboot announced) from inside the call.
            var working = state
            let events = installation.rebootIfDue(&working, policy: configuration.rebootPolicy, window: configuration.rebootWindow,
                                                  now: Date()) { toSave, announcement in
                self.save(toSave)
                self.log([announcement])
            }
            state = working
            log(events)
        }
        await reconcileAll()
        // Memory first, then the disk: the pass above patched every matching process.
        if let channel { await installCarriedPackages(channel) }
        startKernelStep()
        save()
        let status = publish()
        // What the pass allocated (maps, reports, buffers of every process) is free again; given
        // back once the status is out.
        Heap.giveBackFreeMemory()
        IdleMemoryRelease.shared.noteActivity()
        return status
    }

    /// Installs the fixed packages due (`CarriedPackageInstallation`), each dpkg run off the actor:
    /// status and `agentctl` answer meanwhile (an install takes seconds, a maintainer script may
    /// take minutes), and say what is being installed.
    private func installCarriedPackages(_ channel: VerifiedChannel) async {
        let install = carriedPackages.install
        for release in CarriedPackageInstallation.due(plan: plan, channel: channel, state: state, now: Date()) {
            installingPackages = (release.id, Date())
            let outcome: Result<[CarriedPackageState], any Error> = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(returning: Result { try install(release.packages, release.id) })
                }
            }
            installingPackages = nil
            log(CarriedPackageInstallation.record(release, outcome: outcome, channel: channel, state: &state, now: Date(),
                                                  exposed: stillExposed(at: plan)))
        }
    }

    /// Reconciles every process again without re-reading the channel (periodic scan for new
    /// processes when process events are not available, and retries of busy processes).
    public func rescan() async {
        await lock()
        defer { unlock() }
        guard channel != nil, stateProblem == nil else { return }
        await reconcileAll()
        _ = publish()
        Heap.giveBackFreeMemory()
        // Not itself activity for the idle release: where process events are unavailable this runs
        // every 2 s, and the release waits for 2 s of quiet. A rescan that patched anything noted
        // it in `reconcileAll`.
    }

    private func lock() async {
        if busy {
            await withCheckedContinuation { waiters.append($0) }
        } else {
            busy = true
        }
    }

    private func unlock() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }

    /// Whether some process waits for a retry (busy), so the loop should come back soon.
    public var hasPendingProcesses: Bool { ledger.hasPending }

    /// While the last check found a publication incomplete: seconds until the channel is to be
    /// checked again; nil otherwise. The watcher reports the commit point at once, but not what a
    /// sync tool writes into the channel's subfolders, so the loop also comes back by itself: 50 ms
    /// after the first such check, doubling, and never later than the end of the settle time, so a
    /// publication that stays incomplete is reported on time.
    public var channelRecheckSeconds: Double? {
        guard case .incomplete? = standing?.check, let since = incompleteSince, let lastCheck else { return nil }
        let backoff = 0.05 * Double(1 << min(max(incompleteChecks - 1, 0), 10))
        let settled = since.addingTimeInterval(ChannelStanding.settleSeconds).timeIntervalSinceNow
        return max(0, min(lastCheck.addingTimeInterval(backoff).timeIntervalSinceNow, settled + 0.001))
    }

    /// Every object the verified index in force targets (the mapping watch marks their files).
    public var targetedObjects: [HotpatchTarget] { channel?.hotpatches.flatMap(\.targets) ?? [] }

    private static func makeVerifier(_ configuration: AgentConfiguration) -> ChannelVerifier {
        ChannelVerifier(channelDirectory: configuration.channelDirectory,
                        trustedKeysDirectory: configuration.trustedKeysDirectory,
                        storeDirectory: configuration.storeDirectory,
                        policy: ChannelPolicy(allowGroupOrWorldWritable: configuration.allowWritableChannel))
    }

    /// The verifier's refusal, typed (the verifier wraps everything it meets in `.channel`).
    private static func refusal(_ error: ArtifactError, path: String) -> ChannelRefusal {
        if case let .channel(refusal) = error { return refusal }
        return .unreadableFile(path: path, reason: error.description)
    }

    /// The last verified index kept in the store, its signature checked again against the keys as
    /// they are now: what stays in force after a restart when the channel is missing or stale.
    private static func loadKeptChannel(_ configuration: AgentConfiguration, logger: Logger) -> (VerifiedChannel?, ChannelRefusal?) {
        do {
            return (try makeVerifier(configuration).verifyKept(), nil)
        } catch {
            logger.log(event: .verificationFailed, "Failed to bring back the last verified channel index from the store: \(error)",
                       metadata: ["reason": "\(error)"])
            return (nil, refusal(error, path: configuration.storeDirectory))
        }
    }

    private func verifyChannel() {
        let now = Date()
        lastCheck = now
        let indexPath = configuration.channelDirectory + "/" + ChannelVerifier.indexFileName
        let check: ChannelStanding.Check
        var verified: VerifiedChannel?
        var incomplete = false
        if FileManager.default.fileExists(atPath: indexPath) {
            indexMissingSince = nil
            switch Self.makeVerifier(configuration).check(highestAcceptedVersion: state.acceptedIndexVersion, now: now) {
            case let .verified(channel):
                verified = channel
                check = .verified
            case let .incomplete(refusal):
                incomplete = true
                let since = incompleteSince ?? now
                if incompleteSince == nil {
                    logger.debug("Channel publication incomplete (\(refusal.path): \(refusal.reason)); waiting up to \(Int(ChannelStanding.settleSeconds)) s for it to complete")
                }
                incompleteSince = since
                incompleteChecks += 1
                check = ChannelStanding.incomplete(refusal, since: since, now: now)
            case let .refused(refusal):
                check = .refused(refusal)
            }
        } else {
            if indexMissingSince == nil { indexMissingSince = RFC3339.format(now.timeIntervalSince1970) }
            check = .missing
        }
        if !incomplete {
            incompleteSince = nil
            incompleteChecks = 0
        }
        let standing = ChannelStanding.after(
            check, channelDirectory: configuration.channelDirectory, verifiedVersion: verified?.version,
            lastVerifiedVersion: channel?.version, everAccepted: state.acceptedIndexVersion != nil,
            missingSince: indexMissingSince, keptProblem: keptChannelProblem, previous: self.standing)
        if let verified {
            let isNew = verified.version != channel?.version
            channel = verified
            keptChannelProblem = nil
            if verified.version > (state.acceptedIndexVersion ?? Int.min) { state.acceptedIndexVersion = verified.version }
            if isNew {
                log([.recorded(.checked, release: nil,
                               "Accepted channel index version \(verified.version) (\(verified.releases.count) releases, signed by key \(verified.keyFingerprint.prefix(16)))",
                               level: .info, metadata: ["channel.version": "\(verified.version)"])])
            }
        }
        if let line = standing.logLine, standing != self.standing {
            log([.recorded(.verificationFailed, release: nil, line, level: .error, metadata: ["reason": standing.reason?.message ?? line])])
        }
        self.standing = standing
    }

    private func currentPlan(_ channel: VerifiedChannel) -> ReleasePlan {
        let plan = ReleasePlan.decide(
            releases: channel.releases, activeBaseline: state.activeBaseline, installed: Set(state.installedReleases),
            pendingReboot: Set(state.pendingReboot.map(\.id)), quarantined: Set(state.quarantined.keys),
            held: Set(state.held), enrolled: state.enrolled)
        self.plan = plan
        return plan
    }

    // MARK: Reconciling processes

    /// Brings every matching process (or only `pids`) to the desired level, in one call to the
    /// patcher, which also applies the exclusions.
    private func reconcileAll(only pids: [ProcessID]? = nil) async {
        let known = channel?.hotpatches ?? []
        guard !known.isEmpty else {
            if pids == nil { ledger.forgetAll() }
            return
        }
        let plan = channel.map { currentPlan($0) }
        let fixes = plan?.fixes ?? .none
        let patcher = self.patcher
        let policy = ExclusionPolicy(executableGlobs: configuration.excludeExecutables, units: configuration.excludeUnits)
        let reports: [HostProcessReport] = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: patcher.reconcile(among: pids, desired: fixes, known: known, excluding: policy))
            }
        }
        record(reports, fullPass: pids == nil, plan: plan)
        // A pass that found no process of interest ran little code: not activity (see `rescan`).
        if !reports.isEmpty { IdleMemoryRelease.shared.noteActivity() }
        // A host that starts many targeted processes runs a pass for each: their buffers are given
        // back at most once a second (a full cycle gives them back every time, after its status).
        if pids != nil, Monotonic.now >= nextHeapTrim {
            Heap.giveBackFreeMemory()
            nextHeapTrim = Monotonic.now.adding(microseconds: 1_000_000)
        }
    }

    /// Takes `reports` into the ledger (a full pass when `fullPass`), with their follow-ups and
    /// journal lines, at `plan`'s level.
    private func record(_ reports: [HostProcessReport], fullPass: Bool, plan: ReleasePlan?) {
        let desired = plan?.desired
        let fixes = plan?.fixes ?? .none
        let window = Double(configuration.healthWindowSeconds)
        // User ids read by the patcher around each patch: the process may be gone by now.
        var known: [ProcessID: ProcessCredentials] = [:]
        var commands: [ProcessID: String] = [:]
        var cgroups: [ProcessID: String] = [:]
        for report in reports {
            known[report.match.process.pid] = report.userIDs
            commands[report.match.process.pid] = report.command
            cgroups[report.match.process.pid] = report.cgroup
        }
        for transition in ledger.take(reports, fullPass: fullPass, desired: desired, healthWindow: window, now: Date()) {
            switch transition.followUp {
            case .notePatched?:
                notePatched(transition.match, desired: fixes, credentials: known[transition.pid], images: transition.images)
            case .observeCredentials?:
                let credentials = known[transition.pid] ?? ProcessCredentials.read(transition.pid)
                ledger.update(transition.pid) { $0.observe(credentials) }
                health.watched[transition.pid]?.observe(ledger.records[transition.pid]?.credentials)
            case nil:
                break
            }
            if let event = transition.event { log([event]) }
        }
        ledger.describeNew(cgroups: cgroups) { commands[$0] ?? SystemdUnit.command(of: $0) }
        readUnitsOfExposedProcesses(at: fixes)
        log(ledger.vulnerableNotices(at: fixes))
    }

    /// The matching processes that still run vulnerable code at `plan`'s level: refused, being
    /// retried, or excluded by configuration.
    private func stillExposed(at plan: ReleasePlan?) -> CarriedPackageInstallation.StillExposed {
        let fixes = plan?.fixes ?? .none
        let records = ledger.sorted
        return .init(unpatched: records.filter { !$0.vulnerableObjects(at: fixes).isEmpty }.count,
                     pending: records.filter { $0.state == .pending }.count,
                     excluded: ledger.excluded.count)
    }

    // MARK: Reconciling the kernel

    /// Starts bringing the running kernel's live patch to the desired level (`reconcileKernel`)
    /// in a task of its own, outside the cycle: a transition the kernel holds up takes up to three
    /// times `kernel_transition_timeout`, and meanwhile new processes, landed publications and
    /// crashes are handled as usual. With a step in flight, it runs once more when that one ends,
    /// with the plan then in force.
    private func startKernelStep() {
        guard kernelStep == nil else {
            kernelStepAgain = true
            return
        }
        kernelStep = Task {
            await reconcileKernel()
            await lock()
            save()
            _ = publish()
            unlock()
            kernelStep = nil
            if kernelStepAgain {
                kernelStepAgain = false
                startKernelStep()
            }
        }
    }

    /// Waits until no kernel step is in flight (an administrator's command and `--once` wait for
    /// the kernel's answer; so does a stop).
    public func kernelStepFinished() async {
        while let step = kernelStep { await step.value }
    }

    /// Brings the running kernel's live patch to the processes' desired level (nil when unenrolled
    /// or without a channel: only our patches are reverted, nothing is loaded). The patcher blocks
    /// for up to four times the stall time, so it runs off the actor: status and the control
    /// socket keep answering, and the loop's heartbeat allows a cycle far longer.
    private func reconcileKernel() async {
        let desired = state.enrolled ? plan?.desired : nil
        let releases = channel?.hotpatchReleases ?? []
        let skipping = Set(state.quarantined.keys).union(state.held)
        let quarantined = state.quarantined
        let version = channel?.version
        let notRetrying = kernelFailedAttempt.flatMap { $0.channelVersion == version ? $0.key : nil }
        let stall = Double(configuration.kernelTransitionTimeoutSeconds)
        let kernelCycle = self.kernelCycle
        kernelStepInFlight = (Date(), releases)
        defer { kernelStepInFlight = nil }
        let result: KernelCycleResult = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: kernelCycle(desired, releases, skipping, quarantined, notRetrying, stall))
            }
        }
        kernelFailedAttempt = result.failedAttempt.map { (key: $0, channelVersion: version) }
        // A fix not retried keeps the status of its failure, with the kernel's own reason.
        if notRetrying != nil, result.failedAttempt == notRetrying, result.events.isEmpty, kernelStatus?.state == .failed { return }
        if let quarantine = result.quarantine {
            let reason = quarantine.reason
            state.quarantined[quarantine.key] = reason
            log([.recorded(.quarantined, release: result.status?.hotpatch,
                           "Quarantined the kernel live patch of \(result.status?.hotpatch ?? "?") for kernel \(result.status?.release ?? "?"): \(reason)",
                           level: .error, metadata: KernelLivePatching.metadata(result.status ?? .init(release: "", buildId: nil, state: .failed)))])
        }
        // Log only what changed: a transition followed cycle after cycle is said once.
        if Self.kernelChanged(from: kernelStatus, to: result.status) || result.quarantine != nil { log(result.events) }
        kernelStatus = result.status
    }

    /// Whether the kernel's status changed in what the journal reports (not the seconds or tasks).
    private static func kernelChanged(from old: AgentStatus.Kernel?, to new: AgentStatus.Kernel?) -> Bool {
        func key(_ status: AgentStatus.Kernel?) -> [String?] {
            [status?.state.rawValue, status?.hotpatch, status?.livepatch, status?.reason, status?.buildId]
        }
        return key(old) != key(new)
    }

    /// A new process (exec) or one to look at again: reconcile just that one.
    public func processStarted(_ pid: ProcessID) async {
        await lock()
        defer { unlock() }
        guard channel != nil, stateProblem == nil else { return }
        await reconcileAll(only: [pid])
    }

    /// A process ended. If it crashed soon after we patched it, and the crash is one no
    /// unprivileged user could have caused or faked (see `HealthCheck.judge`), the hotpatch is
    /// suspect: revert it everywhere, quarantine it, and say so loudly. Any other crash-looking
    /// death is only logged.
    public func processExited(_ pid: ProcessID, signal: Int32?) async {
        // Patched at its start and dead before its report was taken: record it first.
        if ledger.records[pid] == nil, let start = execGate?.takeReport(pid) { await record(start) }
        let listed = ledger.remove(pid)
        if health.watched[pid] == nil, busy, let signal, HealthCheck.crashSignals.contains(signal) {
            // A patch in flight may be recording this very process (a broken hotpatch can kill it
            // before the patch call returns): let it finish, then look again.
            await lock()
            unlock()
            _ = ledger.remove(pid)
        }
        let assessment = health.assessExit(of: pid, signal: signal, listed: listed, credentialsNow: ProcessCredentials.read(pid),
                                           window: Double(configuration.healthWindowSeconds),
                                           kernelReportsFaults: KernelFaultLog.kernelReportsFaults, state: &state, now: Date())
        log(assessment.events)
        guard assessment.quarantined != nil else { return }
        save()
        await lock()
        defer { unlock() }
        await reconcileAll()
        save()
        _ = publish()
    }

    // MARK: Status

    /// The status as of now.
    public func status() -> AgentStatus {
        readUnitsOfExposedProcesses(at: plan?.fixes ?? .none)
        return StatusBuilder.status(StatusFacts(
            state: state, stateProblem: stateProblem, records: ledger.sorted, excludedCount: ledger.excluded.count,
            lastPause: ledger.lastPause, channel: channel, standing: standing, lastCheck: lastCheck, plan: plan,
            bootID: bootID, faultReportsUnavailable: health.faultReportsUnavailable, configuration: configuration,
            processWatch: processWatch, mappingWatch: mappingWatch, execGate: execGateStatus, agentVersion: version, kernel: kernelNow(),
            installingPackages: installingPackages))
    }

    /// The exec gate's status now.
    private var execGateStatus: AgentStatus.ExecGateStatus? {
        guard let execGate else { return nil }
        let tally = execGate.tally
        let reason: String?
        if case let .off(why) = execGate.mode { reason = why } else { reason = nil }
        return .init(mode: execGate.mode.statusName, reason: reason, patched: tally.patched, letGo: tally.letGo, notHeld: tally.notHeld,
                     lastLetGo: tally.lastLetGo)
    }

    /// The kernel's status: the last cycle's, or while a cycle waits for a transition, the
    /// transition as the kernel shows it now (with the tasks that hold it up).
    private func kernelNow() -> AgentStatus.Kernel? {
        guard let inFlight = kernelStepInFlight else { return kernelStatus }
        return KernelLivePatching.liveTransition(releases: inFlight.releases, paths: kernelPaths, since: inFlight.since) ?? kernelStatus
    }

    private func publish() -> AgentStatus {
        let current = status()
        for listener in statusListeners { listener(current) }
        return current
    }

    // MARK: Control

    public func processes() -> [ProcessEntry] {
        ledger.readUnits(of: { _ in true }, unit: SystemdUnit.unit(of:))
        return ledger.sorted.map { $0.entry(at: plan?.fixes ?? .none) }
    }

    /// Reads the unit of each process that still runs vulnerable code at `fixes` (the level in
    /// force): its status reason and journal notice name it, with the command that restarts it.
    private func readUnitsOfExposedProcesses(at fixes: DesiredFixes) {
        ledger.readUnits(of: { !$0.vulnerableObjects(at: fixes).isEmpty }, unit: SystemdUnit.unit(of:))
    }

    public func history() -> [HistoryEntry] { state.history }

    public func checkNow() async -> AgentStatus {
        await runCycle()
        await kernelStepFinished()
        return status()
    }

    public func apply(id: String) async throws -> String { try await administer(.apply(id: id)) }

    public func revert(id: String) async throws -> String { try await administer(.revert(id: id)) }

    public func enroll() async throws -> String { try await administer(.enroll) }

    public func unenroll() async throws -> String { try await administer(.unenroll) }

    /// Applies an administrator's decision (`AdminCommands`), logs it, then runs a cycle.
    private func administer(_ command: AdminCommand) async throws -> String {
        try requireWritableState()
        let decision = try AdminCommands.decide(command, state: state, channel: channel)
        state = decision.state
        if case .apply = command { kernelFailedAttempt = nil }
        log(decision.events)
        await runCycle(evenWhileLanding: true)
        await kernelStepFinished()
        return decision.answer
    }

    private func requireWritableState() throws {
        if let stateProblem { throw AgentCoreError.corruptState(path: store.path, reason: stateProblem) }
    }

    // MARK: Records

    /// Logs each event once, and keeps in the history those that record an action.
    private func log(_ events: [AgentEvent]) {
        for event in events {
            logger.log(level: event.level, "\(event.message)", metadata: event.loggerMetadata)
            if let entry = event.historyEntry(time: RFC3339.format(Date().timeIntervalSince1970)) { state.record(entry) }
        }
    }

    private func save(_ state: AgentState? = nil) {
        guard stateProblem == nil else { return }
        do { try store.save(state ?? self.state) } catch {
            logger.error("Failed to save state to \(store.path): \(error)")
        }
    }

    // MARK: Health

    /// Gives the health check the kernel's fault reports (the process watch service opens them).
    public func useKernelFaultLog(_ log: KernelFaultLog) {
        health.faultLog = log
        if case let .unavailable(why) = log.availability {
            logger.warning("Cannot read kernel fault reports (\(why)); a crash of a patched root-only process within the health window will count without the kernel's confirmation that it faulted in the hotpatch")
        }
    }

    /// What the health check knows of a process just patched: its credentials, and where the
    /// hotpatch's code lies in it (every object's fix, whichever level it comes from, counts as the
    /// code of the level in force: that is the level a crash quarantines).
    /// `credentials` were read right around the patch and `images` are where the patcher placed each
    /// object's image: what is missing is read from the process now.
    private func notePatched(_ match: ProcessMatch, desired: DesiredFixes, credentials: ProcessCredentials?,
                             images: [BuildID: Range<UInt64>]) {
        let pid = match.process.pid
        ledger.update(pid) { record in
            record.observe(credentials ?? ProcessCredentials.read(pid))
            guard let release = desired.release else { return }
            let everyImageKnown = match.objects.allSatisfy { object in
                desired.fix(for: object.buildID) == nil || object.buildID.map { images[$0] != nil } == true
            }
            let mappings = everyImageKnown ? [] : ((try? ProcFS.maps(of: pid)) ?? [])
            var code = PatchedCode(hotpatchID: release.id)
            for object in match.objects {
                guard let fix = desired.fix(for: object.buildID) else { continue }
                let inForce = Hotpatch(id: release.id, baseline: release.baseline, level: release.level, targets: [fix.target])
                code = code.merged(with: PatchedCode.locate(inForce, buildID: object.buildID, loadBias: object.loadBias,
                                                            mappings: mappings, image: object.buildID.flatMap { images[$0] }))
            }
            record.patchedCode = code
        }
        guard desired.release != nil, let record = ledger.records[pid] else { return }
        health.watch(record, window: Double(configuration.healthWindowSeconds))
    }
}
