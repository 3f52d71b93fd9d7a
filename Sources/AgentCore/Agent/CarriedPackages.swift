import AgentProtocol
import Artifact
import Engine
import Foundation

/// Brings the fixed packages of the hotpatch in force to the disk, after the pass that patched
/// the running processes, so processes started later load the fixed files ("disk parity"). Once
/// per release: what was installed is kept in the state, and a restart or a re-scan never installs
/// it again. No reboot is asked for, and no process is restarted. Every rule is on the state; the
/// one effect goes through `install`; every line to log is returned.
struct CarriedPackageInstallation: Sendable {
    /// Installs a release's packages (`ReleaseInstaller.installCarried`); throws dpkg's reason.
    var install: @Sendable (_ packages: [InstallableFile], _ releaseID: String) throws -> [CarriedPackageState]

    /// The real installer (dpkg), backups under `stateDirectory/backup` (unused by packages).
    static func host(stateDirectory: String) -> CarriedPackageInstallation {
        let installer = ReleaseInstaller(backupDirectory: stateDirectory + "/backup")
        return CarriedPackageInstallation(install: { try installer.installCarried(packages: $0, releaseID: $1) })
    }

    /// The hotpatch releases whose packages belong on disk at `plan`'s level, in level order: the
    /// level in force and every earlier level whose fix some object still runs (levels are
    /// cumulative per object, so such a level's packages still hold that object's fixed file).
    /// Releases without packages, and none at all when no level is in force (unenrolled, held,
    /// quarantined), are left out.
    static func releasesInForce(_ plan: ReleasePlan?, channel: VerifiedChannel) -> [HotpatchRelease] {
        guard let plan, let desired = plan.desired else { return [] }
        let inForce = Set(plan.fixes.fixes.values.compactMap { $0.release?.id }).union([desired.id])
        return channel.hotpatchReleases.filter { inForce.contains($0.id) && !$0.packages.isEmpty }
            .sorted { $0.hotpatch.level < $1.hotpatch.level }
    }

    /// The matching processes that still run vulnerable code when the packages go to disk: the
    /// fixed files reach them only when they are patched, restarted or gone.
    struct StillExposed: Sendable, Equatable {
        /// Processes the agent could not patch (unpatchable, or refused objects) at the level in force.
        var unpatched: Int
        /// Processes whose patching is being retried (busy, hotpatch-pending).
        var pending: Int
        /// Processes `exclude_executables`/`exclude_units` keep the agent away from: not patched,
        /// by the administrator's choice.
        var excluded: Int
        /// Nothing runs vulnerable code.
        static let none = StillExposed(unpatched: 0, pending: 0, excluded: 0)
        /// Every process still running vulnerable code.
        var total: Int { unpatched + pending + excluded }
    }

    /// The journal's line once `release`'s packages (`list`) are on disk: no reboot is needed; no
    /// restart either when every process runs the hotpatch, else how many processes still run
    /// the vulnerable code, why, and where to see them.
    static func installedMessage(release: String, list: String, exposed: StillExposed) -> String {
        let head = "Installed the fixed packages of hotpatch \(release) on disk: \(list); "
        guard exposed.total > 0 else {
            return head + "no reboot or restart is needed (running processes run the hotpatch)"
        }
        var why: [String] = []
        if exposed.unpatched > 0 { why.append("\(exposed.unpatched) could not be patched") }
        if exposed.pending > 0 { why.append("\(exposed.pending) pending a retry") }
        if exposed.excluded > 0 {
            why.append("\(exposed.excluded) excluded by configuration (exclude_executables/exclude_units: not patched, by the administrator's choice)")
        }
        return head + "no reboot is needed, but \(exposed.total) process(es) still run the vulnerable code ("
            + why.joined(separator: ", ")
            + "): each loads the fixed files only once patched or restarted; see `agentctl processes`"
    }

    /// Installs the packages of every release in force not installed yet (a failure is retried on
    /// a new channel version or after its backoff, never on every cycle). Call it after the patch
    /// pass over every process: memory first, then the disk.
    /// `exposed` counts the processes that still run vulnerable code, for the journal's line.
    /// (The agent runs the same steps with each install off its actor: `due`, `install`, `record`.)
    func run(plan: ReleasePlan?, channel: VerifiedChannel, state: inout AgentState, now: Date,
             exposed: StillExposed = .none) -> [AgentEvent] {
        Self.due(plan: plan, channel: channel, state: state, now: now).flatMap { release in
            let outcome = Result { try install(release.packages, release.id) }
            return Self.record(release, outcome: outcome, channel: channel, state: &state, now: now, exposed: exposed)
        }
    }

    /// The releases in force whose packages are to be installed now: not installed yet, and not
    /// failed unless the retry is due (a new channel version, or the backoff over).
    static func due(plan: ReleasePlan?, channel: VerifiedChannel, state: AgentState, now: Date) -> [HotpatchRelease] {
        releasesInForce(plan, channel: channel).filter { release in
            let previous = state.carriedInstalls.first { $0.release == release.id }
            if previous?.isInstalled == true { return false }
            if let failure = previous?.failure, !failure.isDue(channelVersion: channel.version, now: now.timeIntervalSince1970) { return false }
            return true
        }
    }

    /// Keeps the `outcome` of installing `release`'s packages in `state` (the packages and when,
    /// or the failure and its next attempt) and returns the line to log.
    static func record(_ release: HotpatchRelease, outcome: Result<[CarriedPackageState], any Error>, channel: VerifiedChannel,
                       state: inout AgentState, now: Date, exposed: StillExposed = .none) -> [AgentEvent] {
        let seconds = now.timeIntervalSince1970
        let previous = state.carriedInstalls.first { $0.release == release.id }
        var record = CarriedInstall(release: release.id, packages: [], installedAt: nil, failure: nil)
        let metadata = ["hotpatch.id": release.id, "baseline.id": release.hotpatch.baseline]
        let event: AgentEvent
        switch outcome {
        case let .success(packages):
            record.packages = packages
            record.installedAt = RFC3339.format(seconds)
            let list = describe(packages)
            event = .recorded(.packagesInstalled, release: release.id, installedMessage(release: release.id, list: list, exposed: exposed),
                              level: .notice, metadata: metadata.merging(["hotpatch.packages": list]) { $1 })
        case let .failure(error):
            let failure = FailedInstall(id: release.id, kind: "hotpatch", reason: "\(error)", now: seconds,
                                        attempts: (previous?.failure?.attempts ?? 0) + 1, channelVersion: channel.version)
            record.failure = failure
            event = .recorded(.packagesInstallFailed, release: release.id,
                              "Failed to install the fixed packages of hotpatch \(release.id) (attempt \(failure.attempts); next on a new channel version or after \(RFC3339.format(failure.retryAfter))); the hotpatch stays applied: \(error)",
                              level: .error, metadata: metadata.merging(["reason": "\(error)"]) { $1 })
        }
        state.carriedInstalls.removeAll { $0.release == release.id }
        state.carriedInstalls.append(record)
        return [event]
    }

    /// `name version (installed; was V)`, comma-separated, as the journal and status say it.
    static func describe(_ packages: [CarriedPackageState]) -> String {
        packages.map { package in
            let before = package.previousVersion.map { "was \($0)" } ?? "was not installed"
            switch package.action {
            case .installed: return "\(package.name) \(package.version) (installed; \(before))"
            case .alreadyCurrent: return "\(package.name) \(package.version) (already at \(package.previousVersion ?? "?"); left alone)"
            case .notInstalled: return "\(package.name) \(package.version) (not installed here, left alone)"
            }
        }.joined(separator: ", ")
    }

    /// What status shows of the packages on disk: every release of the active baseline whose
    /// packages were installed (a revert or hold does not downgrade them), and the releases in
    /// force whose install failed or has not run yet.
    /// `installing`: the release whose packages dpkg installs now, and since when.
    static func status(state: AgentState, plan: ReleasePlan?, channel: VerifiedChannel?,
                       installing: (release: String, since: Date)? = nil) -> [AgentStatus.FixedPackages] {
        guard let channel else { return [] }
        let ofActiveBaseline = channel.hotpatchReleases.filter { $0.hotpatch.baseline == state.activeBaseline && !$0.packages.isEmpty }
        let inForce = Set(releasesInForce(plan, channel: channel).map(\.id))
        return ofActiveBaseline.compactMap { release -> AgentStatus.FixedPackages? in
            let record = state.carriedInstalls.first { $0.release == release.id }
            if let record, record.isInstalled {
                return AgentStatus.FixedPackages(hotpatch: release.id, state: .installed, installedAt: record.installedAt, reason: nil,
                             packages: record.packages.map {
                                 .init(name: $0.name, architecture: $0.architecture, version: $0.version, action: $0.action.rawValue,
                                       previousVersion: $0.previousVersion)
                             })
            }
            if let installing, installing.release == release.id {
                return AgentStatus.FixedPackages(hotpatch: release.id, state: .installing, installedAt: nil, reason: nil, packages: [],
                                                 installingSince: RFC3339.format(installing.since.timeIntervalSince1970))
            }
            guard inForce.contains(release.id) else { return nil }
            if let failure = record?.failure {
                return AgentStatus.FixedPackages(hotpatch: release.id, state: .failed, installedAt: nil,
                             reason: "attempt \(failure.attempts), retried on a new channel version or after \(RFC3339.format(failure.retryAfter)): \(failure.reason)",
                             packages: [])
            }
            return AgentStatus.FixedPackages(hotpatch: release.id, state: .pending, installedAt: nil, reason: nil, packages: [])
        }
    }
}
