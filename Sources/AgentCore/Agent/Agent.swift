import AgentProtocol
import Artifact
import Engine
import Foundation
import LinuxSystem
import Logging

/// The daemon's heart: verifies the channel, installs baselines and fixes, keeps every process
/// that maps a targeted object at the desired hotpatch level, watches patched processes' health,
/// and answers the control socket. The truth about what is applied is always read from the
/// processes; the state file holds only what cannot be read back (rollback protection, baseline,
/// boot, holds, quarantine, enrollment, history).
public actor Agent: AgentControlHandler {
    /// The configuration in force (replaced on reload).
    public private(set) var configuration: AgentConfiguration
    private let logger: Logger
    private let store: StateStore
    private var state: AgentState
    /// Set when the state file could not be read: the agent then only reports.
    private let stateProblem: String?
    private let patcher: HostPatcher
    private let version: String
    private let bootID: String
    /// The verified index in force: the channel's, or the last one verified (kept in the store
    /// across restarts) while the channel is missing, expired, rolled back or unreadable.
    private var channel: VerifiedChannel?
    /// Why the channel's own index is not the one in force (status names it), or nil.
    private var channelError: String?
    /// The status line about the channel (exposed, or the benign "no index published yet").
    private var channelReason: AgentStatus.Reason?
    /// When the index was first seen missing (RFC 3339), while it stays missing.
    private var indexMissingSince: String?
    /// Why the store's last verified index could not be brought back at start, if it could not.
    private var keptChannelProblem: String?
    private var lastCheck: Date?
    private var records: [ProcessID: ProcessRecord] = [:]
    private var excluded = 0
    private var lastPause: UInt64?
    private var plan: ReleasePlan?
    /// Whether the refusal to auto-reboot twice in one boot was logged (once per agent run).
    private var autoRebootRefusalLogged = false
    /// How new processes are noticed ("netlink" or "scan"); set by the process watcher.
    public private(set) var processWatch = "scan"
    private var statusListeners: [@Sendable (AgentStatus) -> Void] = []
    /// Patching work is serialised: an actor is re-entrant at every await, and two reconciles of
    /// the same process from two tracer threads would fight over ptrace.
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// What the crash health check reads and remembers (see `processExited`).
    private var health = HealthWatch()

    /// Opens the state (a corrupt file is reported, never reset) and prepares the patcher.
    public init(configuration: AgentConfiguration, logger: Logger, version: String, workers: Int? = nil) {
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
        var options = PatchOptions()
        options.strictStackCheck = configuration.strictStackCheck
        patcher = HostPatcher(workers: workers ?? HostPatcher.defaultWorkerCount, options: options)
    }

    /// Calls `listener` with the status after every cycle (sd_notify STATUS=, metrics).
    public func onStatus(_ listener: @escaping @Sendable (AgentStatus) -> Void) {
        statusListeners.append(listener)
    }

    /// Records how new processes are noticed.
    public func setProcessWatch(_ mode: String) { processWatch = mode }

    /// Replaces the configuration (SIGHUP).
    public func reload(_ configuration: AgentConfiguration) {
        self.configuration = configuration
        logger.info("Configuration reloaded", metadata: ["event": "reloaded"])
    }

    // MARK: The cycle

    /// One full cycle: verify, install, reconcile every process, save, report. Returns the status.
    @discardableResult
    public func runCycle() async -> AgentStatus {
        await lock()
        defer { unlock() }
        if let stateProblem {
            logger.critical("State file is unreadable; not patching until it is repaired: \(stateProblem)",
                            metadata: ["event": "verification-failed", "reason": "\(stateProblem)"])
            return publish()
        }
        confirmRebootIfBooted()
        verifyChannel()
        if let channel {
            adoptBaselineOnFirstStart(channel)
            installReleases(channel)
        }
        await reconcileAll()
        save()
        return publish()
    }

    /// Reconciles every process again without re-reading the channel (periodic scan for new
    /// processes when process events are not available, and retries of busy processes).
    public func rescan() async {
        await lock()
        defer { unlock() }
        guard channel != nil, stateProblem == nil else { return }
        await reconcileAll()
        _ = publish()
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
    public var hasPendingProcesses: Bool { records.values.contains { $0.state == .pending } }

    private static func makeVerifier(_ configuration: AgentConfiguration) -> ChannelVerifier {
        ChannelVerifier(channelDirectory: configuration.channelDirectory,
                        trustedKeysDirectory: configuration.trustedKeysDirectory,
                        storeDirectory: configuration.storeDirectory,
                        policy: ChannelPolicy(allowGroupOrWorldWritable: configuration.allowWritableChannel))
    }

    /// The last verified index kept in the store, its signature checked again against the keys as
    /// they are now: what stays in force after a restart when the channel is missing or stale.
    private static func loadKeptChannel(_ configuration: AgentConfiguration, logger: Logger) -> (VerifiedChannel?, String?) {
        do {
            return (try makeVerifier(configuration).verifyKept(), nil)
        } catch {
            logger.error("Failed to bring back the last verified channel index from the store: \(error)",
                         metadata: ["event": "verification-failed", "reason": "\(error)"])
            return (nil, "\(error)")
        }
    }

    private func verifyChannel() {
        lastCheck = Date()
        let indexPath = configuration.channelDirectory + "/" + ChannelVerifier.indexFileName
        let check: ChannelStanding.Check
        var verified: VerifiedChannel?
        if FileManager.default.fileExists(atPath: indexPath) {
            indexMissingSince = nil
            do {
                verified = try Self.makeVerifier(configuration).verify(highestAcceptedVersion: state.acceptedIndexVersion, now: Date())
                check = .verified
            } catch {
                check = .refused("\(error)")
            }
        } else {
            if indexMissingSince == nil { indexMissingSince = RFC3339.format(Date().timeIntervalSince1970) }
            check = .missing
        }
        let standing = ChannelStanding.after(
            check, channelDirectory: configuration.channelDirectory, verifiedVersion: verified?.version,
            lastVerifiedVersion: channel?.version, everAccepted: state.acceptedIndexVersion != nil,
            missingSince: indexMissingSince, keptProblem: keptChannelProblem)
        if let verified {
            let isNew = verified.version != channel?.version
            channel = verified
            keptChannelProblem = nil
            if verified.version > (state.acceptedIndexVersion ?? Int.min) { state.acceptedIndexVersion = verified.version }
            if isNew {
                record("checked", release: nil, "Accepted channel index version \(verified.version) (\(verified.releases.count) releases, signed by key \(verified.keyFingerprint.prefix(16)))",
                       level: .info, metadata: [:])
            }
        }
        if let line = standing.logLine, standing.reason != channelReason {
            record("verification-failed", release: nil, line, level: .error, metadata: ["reason": "\(standing.reason?.message ?? line)"])
        }
        channelReason = standing.reason
        channelError = standing.reason?.message
    }

    /// After a reboot (boot id changed), what waited for it is now in force.
    private func confirmRebootIfBooted() {
        defer { state.bootID = bootID }
        guard let previous = state.bootID, previous != bootID, !state.pendingReboot.isEmpty else { return }
        let baselines = state.pendingReboot.filter { $0.kind == "baseline" }
        if let newest = baselines.last {
            state.activeBaseline = newest.id
            record("baseline-installed", release: newest.id, "Baseline \(newest.id) is active after the reboot",
                   level: .notice, metadata: ["baseline.id": "\(newest.id)"])
        }
        for pending in state.pendingReboot { state.installedReleases.append(pending.id) }
        state.pendingReboot = []
        do { try RebootRequest(file: configuration.rebootRequiredFile).clear() } catch {
            logger.warning("Failed to clear \(configuration.rebootRequiredFile): \(error), ignoring")
        }
    }

    private func adoptBaselineOnFirstStart(_ channel: VerifiedChannel) {
        guard state.activeBaseline == nil, state.pendingReboot.isEmpty else { return }
        let installer = makeInstaller()
        if let adopted = ReleasePlan.baselineToAdopt(channel.baselines, matches: { installer.matchesDisk(files: $0.files) }) {
            state.activeBaseline = adopted
            state.installedReleases.append(adopted)
            record("baseline-installed", release: adopted, "Adopted baseline \(adopted): its files already match the disk",
                   level: .notice, metadata: ["baseline.id": "\(adopted)"])
        }
    }

    private func makeInstaller() -> ReleaseInstaller {
        ReleaseInstaller(backupDirectory: configuration.stateDirectory + "/backup")
    }

    private func installReleases(_ channel: VerifiedChannel) {
        let plan = currentPlan(channel)
        var toInstall: [(id: String, kind: String, files: [InstallableFile], why: String)] = []
        if let id = plan.baselineToInstall, let baseline = channel.baselines.first(where: { $0.id == id }) {
            let why = baseline.planned ? "planned baseline \(id)" : "unplanned baseline \(id)"
            toInstall.append((id, "baseline", baseline.files, why + (baseline.description.isEmpty ? "" : ": \(baseline.description)")))
        }
        for id in plan.fixesToInstall {
            if let fix = channel.fixes.first(where: { $0.id == id }) {
                toInstall.append((id, "fix", fix.files, "non-hotpatchable fix \(id)" + (fix.description.isEmpty ? "" : ": \(fix.description)")))
            }
        }
        // A failure the channel no longer asks for is over (superseded, withdrawn or installed).
        state.failedInstalls.removeAll { failed in !toInstall.contains { $0.id == failed.id } }
        let now = Date().timeIntervalSince1970
        for item in toInstall {
            let previous = state.failedInstalls.first { $0.id == item.id }
            if let previous, !previous.isDue(channelVersion: channel.version, now: now) { continue }
            let result: InstallResult
            do {
                result = try makeInstaller().install(files: item.files, releaseID: item.id)
            } catch {
                let failed = FailedInstall(id: item.id, kind: item.kind, reason: "\(error)", now: now,
                                           attempts: (previous?.attempts ?? 0) + 1, channelVersion: channel.version)
                state.failedInstalls.removeAll { $0.id == item.id }
                state.failedInstalls.append(failed)
                record("apply-failed", release: item.id,
                       "Failed to install \(item.id) (attempt \(failed.attempts); next on a new channel version or after \(RFC3339.format(failed.retryAfter))): \(error)",
                       level: .error, metadata: ["reason": "\(error)", "baseline.id": "\(item.id)"])
                continue
            }
            state.failedInstalls.removeAll { $0.id == item.id }
            state.pendingReboot.append(PendingRelease(id: item.id, kind: item.kind, reason: item.why,
                                                      installedAt: RFC3339.format(Date().timeIntervalSince1970), bootID: bootID))
            record("baseline-installed", release: item.id,
                   "Installed \(item.why) (\(result.installedDebs.count) packages, \(result.installedFiles.count) files)",
                   level: .notice, metadata: ["baseline.id": "\(item.id)"])
            // What asks for the reboot in .pkgs: the package names ("name=version" → "name").
            let packages = result.installedDebs.map { String($0.prefix { $0 != "=" }) }
            do {
                try RebootRequest(file: configuration.rebootRequiredFile).request(releaseID: item.id, reason: item.why, packages: packages)
            } catch {
                // Installed all the same: status says a reboot is required whether or not the file could be written.
                logger.error("Failed to write \(configuration.rebootRequiredFile): \(error)",
                             metadata: ["event": "reboot-required", "reason": "\(error)"])
            }
            record("reboot-required", release: item.id, "Reboot required: \(item.why)", level: .warning,
                   metadata: ["reason": "\(item.why)"])
        }
        maybeReboot()
    }

    private func maybeReboot() {
        guard !state.pendingReboot.isEmpty,
              RebootAction.shouldRebootNow(policy: configuration.rebootPolicy, window: configuration.rebootWindow,
                                           now: Date(), pending: !state.pendingReboot.isEmpty) else { return }
        guard state.autoRebootBootID != bootID else {
            if !autoRebootRefusalLogged {
                autoRebootRefusalLogged = true
                logger.error("Not rebooting again: an automatic reboot was already asked for in this boot (boot id \(bootID)) and the boot id has not changed; reboot by hand",
                             metadata: ["event": "reboot-required"])
            }
            return
        }
        state.autoRebootBootID = bootID
        save()
        logger.notice("Rebooting now (reboot policy auto): \(state.pendingReboot.map(\.reason).joined(separator: "; "))",
                      metadata: ["event": "reboot-required"])
        do { try RebootAction.reboot() } catch {
            logger.error("Failed to reboot: \(error)", metadata: ["event": "reboot-required", "reason": "\(error)"])
        }
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

    /// Brings every matching process (or only `pids`) to the desired level.
    private func reconcileAll(only pids: [ProcessID]? = nil) async {
        let known = channel?.hotpatches ?? []
        guard !known.isEmpty else {
            if pids == nil { records = [:] }
            return
        }
        let desired = channel.map { currentPlan($0) }?.desired
        let patcher = self.patcher
        let exclusions = Exclusions(executableGlobs: configuration.excludeExecutables, units: configuration.excludeUnits)
        let outcome: (matches: [TargetMatch], reports: [ProcessPatchReport], executables: [ProcessID: String], excluded: [ProcessID: String]) =
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    var matches = patcher.matches(for: known, among: pids)
                    var executables: [ProcessID: String] = [:]
                    var excluded: [ProcessID: String] = [:]
                    matches = matches.filter { match in
                        let pid = match.process.pid
                        if pid == ProcessID.current { return false }
                        let executable = (try? ProcFS.executablePath(of: pid)) ?? match.object.path
                        executables[pid] = executable
                        if let why = exclusions.reason(pid: pid, executable: executable) {
                            excluded[pid] = why
                            return false
                        }
                        return true
                    }
                    let reports = patcher.reconcile(matches, desired: desired, known: known)
                    continuation.resume(returning: (matches, reports, executables, excluded))
                }
            }
        if pids == nil {
            // A full pass is the whole truth: forget processes that no longer match.
            let seen = Set(outcome.matches.map(\.process.pid))
            records = records.filter { seen.contains($0.key) }
        }
        excluded = outcome.excluded.count
        for (match, report) in zip(outcome.matches, outcome.reports) {
            apply(report, match: match, executable: outcome.executables[match.process.pid] ?? match.object.path, desired: desired)
        }
    }

    private func apply(_ report: ProcessPatchReport, match: TargetMatch, executable: String, desired: Hotpatch?) {
        let pid = match.process.pid
        var record = records[pid].flatMap { $0.identity == match.process ? $0 : nil }
            ?? ProcessRecord(identity: match.process, executable: executable, state: .unpatched)
        var metadata: Logger.Metadata = [
            "target.pid": "\(pid)", "target.exe": "\(executable)",
            "build.id": "\(match.object.buildID?.description ?? "")",
        ]
        if let desired {
            metadata["hotpatch.id"] = "\(desired.id)"
            metadata["baseline.id"] = "\(desired.baseline)"
        }
        if let pause = report.pauseMicroseconds {
            metadata["pause.usec"] = "\(pause)"
            lastPause = pause
            record.pauseUsec = pause
        }
        // Mapping the patch object holds every thread too (so no filter can appear mid-load): a
        // stop of its own, once per process and patch object, reported apart from the redirect's.
        var loadPause = ""
        if let load = report.loadPauseMicroseconds {
            metadata["load.pause.usec"] = "\(load)"
            loadPause = ", load pause \(load) µs"
        }
        switch report.outcome {
        case .applied:
            record.state = .patched
            record.reason = nil
            record.hotpatch = desired?.id
            record.patchedAt = Date()
            notePatched(&record, match: match, desired: desired)
            self.record("applied", release: desired?.id,
                        "Applied hotpatch \(desired?.id ?? "?") to PID \(pid) (\(executable)), pause \(report.pauseMicroseconds ?? 0) µs\(loadPause)",
                        level: .info, metadata: metadata)
        case .alreadyApplied:
            record.state = .patched
            record.reason = nil
            record.hotpatch = desired?.id
            // A process may drop root after it was patched: look again at every pass of its window.
            if let patchedAt = record.patchedAt, Date().timeIntervalSince(patchedAt) <= Double(configuration.healthWindowSeconds) {
                record.observe(ProcessCredentials.read(pid))
                health.watched[pid]?.observe(record.credentials)
            }
        case .reverted:
            record.state = .unpatched
            record.reason = nil
            record.hotpatch = nil
            self.record("reverted", release: nil, "Reverted our hotpatch in PID \(pid) (\(executable))", level: .info, metadata: metadata)
        case .notApplied:
            record.state = .unpatched
            record.hotpatch = nil
            record.reason = nil
        case let .busy(reason):
            record.state = .pending
            record.reason = reason
            logger.debug("PID \(pid) busy, will retry: \(reason)", metadata: metadata)
        case .unpatchable(.processGone):
            records[pid] = nil
            return
        case let .unpatchable(reason):
            let changed = record.state != .unpatchable || record.reason != reason.description
            record.state = .unpatchable
            record.reason = reason.description
            record.hotpatch = nil
            if changed {
                metadata["reason"] = "\(reason)"
                self.record("process-unpatchable", release: desired?.id,
                            "PID \(pid) (\(executable)) cannot be patched: \(reason)", level: .warning, metadata: metadata)
            }
        }
        records[pid] = record
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
        let listed = records.removeValue(forKey: pid)
        var watched = health.watched.removeValue(forKey: pid)
        if watched == nil, busy, let signal, HealthCheck.crashSignals.contains(signal) {
            // A patch in flight may be recording this very process (a broken hotpatch can kill it
            // before the patch call returns): let it finish, then look again.
            await lock()
            unlock()
            records[pid] = nil
            watched = health.watched.removeValue(forKey: pid)
        }
        // Reverted since (still listed, without a hotpatch): its death says nothing of the hotpatch.
        guard var record = watched, listed == nil || listed?.hotpatch != nil else { return }
        guard let signal, HealthCheck.crashSignals.contains(signal), let hotpatch = record.hotpatch,
              let patchedAt = record.patchedAt else { return }
        // A zombie still shows its credentials; a later drop of root taints it.
        record.observe(ProcessCredentials.read(pid))
        let age = Date().timeIntervalSince(patchedAt)
        let death = HealthCheck.Death(pid: pid, signal: signal, hotpatchID: hotpatch, secondsSincePatch: age,
                                      credentials: record.credentials, code: record.patchedCode,
                                      earliestReport: HealthCheck.earliestReport(ofProcessStartedAt: record.identity.startTime))
        let what = "PID \(pid) (\(record.executable)) died of \(HealthCheck.signalName(signal)) \(Int(age))s after hotpatch \(hotpatch) was applied"
        switch HealthCheck.judge(death, window: Double(configuration.healthWindowSeconds), witness: kernelWitness()) {
        case nil:
            return
        case let .ignored(why):
            logIgnoredDeath("\(what), ignored: \(why); nothing reverted or quarantined", pid: pid, record: record,
                            hotpatch: hotpatch, signal: signal, why: why)
            return
        case let .counts(why):
            let reason = "\(what): \(why)"
            state.quarantined[hotpatch] = reason
            self.record("quarantined", release: hotpatch, "Quarantined hotpatch \(hotpatch) and reverting it everywhere: \(reason)",
                        level: .error, metadata: ["hotpatch.id": "\(hotpatch)", "target.pid": "\(pid)", "reason": "\(reason)"])
        }
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
        var reasons: [AgentStatus.Reason] = []
        if let stateProblem {
            reasons.append(.init(verdict: .exposed, message: "state file unreadable, nothing is patched until it is repaired: \(stateProblem)"))
        }
        if !state.enrolled {
            reasons.append(.init(verdict: .unenrolled, message: "host is unenrolled: hotpatches are reverted and none is applied (agentctl enroll)"))
        }
        if let channelReason { reasons.append(channelReason) }
        for record in records.values.sorted(by: { $0.identity.pid < $1.identity.pid }) {
            switch record.state {
            case .unpatchable:
                reasons.append(.init(verdict: .exposed, message: "PID \(record.identity.pid) (\(record.executable)) cannot be patched: \(record.reason ?? "")"))
            case .pending:
                reasons.append(.init(verdict: .hotpatchPending, message: "PID \(record.identity.pid) (\(record.executable)): \(record.reason ?? "pending"), retrying"))
            default: break
            }
        }
        for (id, why) in state.quarantined.sorted(by: { $0.key < $1.key }) where channel?.hotpatches.contains(where: { $0.id == id }) ?? false {
            reasons.append(.init(verdict: .exposed, message: "hotpatch \(id) quarantined (agentctl apply \(id) to retry): \(why)"))
        }
        for id in state.held.sorted() {
            reasons.append(.init(verdict: .upToDate, message: "hotpatch \(id) held by an administrator (agentctl apply \(id) to lift)"))
        }
        for failed in state.failedInstalls {
            reasons.append(.init(verdict: .exposed,
                                 message: "\(failed.kind) \(failed.id) failed to install (attempt \(failed.attempts), retried on a new channel version or after \(RFC3339.format(failed.retryAfter))): \(failed.reason)"))
        }
        for pending in state.pendingReboot {
            reasons.append(.init(verdict: .rebootRequired, message: "\(pending.id) installed, waiting for a reboot: \(pending.reason)"))
        }
        if !state.pendingReboot.isEmpty, state.autoRebootBootID == bootID {
            reasons.append(.init(verdict: .rebootRequired,
                                 message: "automatic reboot already requested in this boot; the agent asks only once a boot: if the host does not reboot, reboot it by hand"))
        }
        if excluded > 0 {
            reasons.append(.init(verdict: .upToDate, message: "\(excluded) matching process(es) excluded by configuration"))
        }
        if let log = health.faultLog, case let .unavailable(why) = log.availability {
            reasons.append(.init(verdict: .upToDate,
                                 message: "kernel fault reports unreadable (\(why)): the crash health check counts fault deaths of root-only processes without the kernel's confirmation"))
        }
        let verdict = reasons.map(\.verdict).max() ?? .upToDate
        var hotpatch: AgentStatus.HotpatchInForce?
        if let desired = plan?.desired, state.enrolled {
            let cves = (channel?.releases ?? []).flatMap { release -> [String] in
                if case let .hotpatch(h) = release, h.hotpatch.baseline == desired.baseline, h.hotpatch.level <= desired.level { return h.cves }
                return []
            }
            let description = channel?.releases.first { $0.id == desired.id }?.description
            hotpatch = .init(id: desired.id, level: desired.level, cves: Array(Set(cves)).sorted(), description: description)
        }
        let counts = AgentStatus.ProcessCounts(
            patched: records.values.filter { $0.state == .patched }.count,
            pending: records.values.filter { $0.state == .pending }.count,
            unpatchable: records.values.filter { $0.state == .unpatchable }.count)
        return AgentStatus(
            verdict: verdict, reasons: reasons,
            baseline: .init(active: state.activeBaseline, pending: state.pendingReboot.map(\.id)),
            hotpatch: hotpatch, processes: counts,
            reboot: .init(required: !state.pendingReboot.isEmpty, reasons: state.pendingReboot.map(\.reason),
                          policy: configuration.rebootPolicy.rawValue),
            channel: .init(version: channel?.version ?? state.acceptedIndexVersion,
                           lastCheck: lastCheck.map { RFC3339.format($0.timeIntervalSince1970) },
                           error: channelError, path: configuration.channelDirectory),
            enrolled: state.enrolled, processWatch: processWatch, lastPauseUsec: lastPause, agentVersion: version)
    }

    private func publish() -> AgentStatus {
        let current = status()
        for listener in statusListeners { listener(current) }
        return current
    }

    /// One line for systemd's STATUS=.
    public static func summary(_ status: AgentStatus) -> String {
        var parts = [status.verdict.phrase]
        if let baseline = status.baseline.active { parts.append("baseline \(baseline)") }
        if let hotpatch = status.hotpatch { parts.append("hotpatch \(hotpatch.id) level \(hotpatch.level)") }
        parts.append("\(status.processes.patched) patched, \(status.processes.pending) pending, \(status.processes.unpatchable) unpatchable")
        if status.reboot.required { parts.append("reboot required") }
        return parts.joined(separator: "; ")
    }

    // MARK: Control

    public func processes() -> [ProcessEntry] {
        records.values.sorted { $0.identity.pid < $1.identity.pid }.map(\.entry)
    }

    public func history() -> [HistoryEntry] { state.history }

    public func checkNow() async -> AgentStatus { await runCycle() }

    public func apply(id: String) async throws -> String {
        try requireWritableState()
        guard let channel, channel.hotpatches.contains(where: { $0.id == id }) else {
            throw AgentCoreError.unknownRelease(id: id)
        }
        let wasHeld = state.held.contains(id), wasQuarantined = state.quarantined[id] != nil
        state.held.removeAll { $0 == id }
        state.quarantined[id] = nil
        record("applied", release: id, "Administrator lifted \(wasQuarantined ? "the quarantine" : wasHeld ? "the hold" : "nothing") on \(id)",
               level: .notice, metadata: ["hotpatch.id": "\(id)"])
        await runCycle()
        return wasHeld || wasQuarantined ? "\(id): released and applied where it is the desired level" : "\(id): nothing held; reconciled"
    }

    public func revert(id: String) async throws -> String {
        try requireWritableState()
        guard let channel, channel.hotpatches.contains(where: { $0.id == id }) else {
            throw AgentCoreError.unknownRelease(id: id)
        }
        if !state.held.contains(id) { state.held.append(id) }
        record("reverted", release: id, "Administrator reverted and held \(id)", level: .notice, metadata: ["hotpatch.id": "\(id)"])
        await runCycle()
        return "\(id): reverted everywhere and held (agentctl apply \(id) to lift)"
    }

    public func enroll() async throws -> String {
        try requireWritableState()
        state.enrolled = true
        record("enrolled", release: nil, "Host enrolled: hotpatches will be applied", level: .notice, metadata: [:])
        await runCycle()
        return "enrolled"
    }

    public func unenroll() async throws -> String {
        try requireWritableState()
        state.enrolled = false
        record("unenrolled", release: nil, "Host unenrolled: reverting our hotpatches, applying none", level: .notice, metadata: [:])
        await runCycle()
        return "unenrolled: hotpatches reverted"
    }

    private func requireWritableState() throws {
        if let stateProblem { throw AgentCoreError.corruptState(path: store.path, reason: stateProblem) }
    }

    // MARK: Records

    private func record(_ event: String, release: String?, _ message: String, level: Logger.Level, metadata: Logger.Metadata) {
        var metadata = metadata
        metadata["event"] = "\(event)"
        logger.log(level: level, "\(message)", metadata: metadata)
        state.record(HistoryEntry(time: RFC3339.format(Date().timeIntervalSince1970), event: event, release: release, message: message))
    }

    private func save() {
        guard stateProblem == nil else { return }
        do { try store.save(state) } catch {
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
    /// hotpatch's code lies in it.
    private func notePatched(_ record: inout ProcessRecord, match: TargetMatch, desired: Hotpatch?) {
        let pid = match.process.pid
        record.observe(ProcessCredentials.read(pid))
        guard let desired else { return }
        let code = PatchedCode.locate(desired, buildID: match.object.buildID, loadBias: match.object.loadBias,
                                       mappings: (try? ProcFS.maps(of: pid)) ?? [])
        record.patchedCode = record.patchedCode.map { $0.merged(with: code) } ?? code
        health.watch(record, window: Double(configuration.healthWindowSeconds))
    }

    /// The kernel's fault reports, or why the health check must do without them.
    private func kernelWitness() -> HealthCheck.KernelWitness {
        guard let log = health.faultLog else { return .unavailable(reason: "not opened") }
        if case let .unavailable(why) = log.availability { return .unavailable(reason: why) }
        guard KernelFaultLog.kernelReportsFaults else {
            if !health.exceptionTraceOffLogged {
                health.exceptionTraceOffLogged = true
                logger.warning("The kernel does not report faults (sysctl debug.exception-trace = 0); crashes of patched root-only processes count without confirmation")
            }
            return .unavailable(reason: "sysctl debug.exception-trace is 0")
        }
        return .reports(log.reports())
    }

    /// Logs a death that did not count, rate-limited: a user may kill their own processes in a loop.
    private func logIgnoredDeath(_ message: String, pid: ProcessID, record: ProcessRecord, hotpatch: String, signal: Int32, why: String) {
        let admission = health.limiter.admit()
        guard admission.log else { return }
        let held = admission.suppressedBefore > 0 ? " (\(admission.suppressedBefore) more such deaths were not logged)" : ""
        var metadata: Logger.Metadata = [
            "event": "\(JournalEvent.healthIgnored.rawValue)", "hotpatch.id": "\(hotpatch)", "target.pid": "\(pid)",
            "target.exe": "\(record.executable)", "target.signal": "\(signal)", "reason": "\(why)",
        ]
        if let credentials = record.credentials { metadata["target.uid"] = "\(credentials.real)" }
        logger.log(level: JournalEvent.healthIgnored.defaultLevel, "\(message)\(held)", metadata: metadata)
    }
}
