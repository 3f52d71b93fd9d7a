import Artifact
import Engine
import Foundation

/// The actions release installation performs on the host. The agent passes the real ones
/// (`ReleaseInstaller`, `RebootRequest`, `RebootAction`); tests pass their own and run without root.
struct InstallActions: Sendable {
    /// Installs a release's files (dpkg or plain files); throws why it could not.
    var install: @Sendable (_ files: [InstallableFile], _ releaseID: String) throws -> InstallResult
    /// Whether the files are already on disk as the release has them (first-start adoption).
    var matchesDisk: @Sendable (_ files: [InstallableFile]) -> Bool
    /// Writes the reboot request into the reboot flag file (and its `.pkgs`).
    var requestReboot: @Sendable (_ file: String, _ releaseID: String, _ reason: String, _ packages: [String]) throws -> Void
    /// Clears the reboot request in the reboot flag file after the reboot.
    var clearRebootRequest: @Sendable (_ file: String) throws -> Void
    /// Asks the system to reboot now.
    var reboot: @Sendable () throws -> Void

    /// The real actions, with backups in `stateDirectory/backup`.
    static func host(stateDirectory: String) -> InstallActions {
        let installer = ReleaseInstaller(backupDirectory: stateDirectory + "/backup")
        return InstallActions(
            install: { try installer.install(files: $0, releaseID: $1) },
            matchesDisk: { installer.matchesDisk(files: $0) },
            requestReboot: { try RebootRequest(file: $0).request(releaseID: $1, reason: $2, packages: $3) },
            clearRebootRequest: { try RebootRequest(file: $0).clear() },
            reboot: { try RebootAction.reboot() })
    }
}

/// Installs baselines and fixes the channel asks for, adopts a baseline already on disk, confirms
/// them after a reboot and decides whether to reboot: every rule on the saved state, every effect
/// through `InstallActions`, every line to log returned.
struct ReleaseInstallation: Sendable {
    /// The effects on the host.
    let actions: InstallActions
    /// The current boot's id.
    var bootID: String
    /// The reboot flag file (`reboot_required_file`, applied on reload).
    var rebootRequiredFile: String
    /// Whether the refusal to auto-reboot twice in one boot was logged (once per agent run).
    private(set) var autoRebootRefusalLogged = false

    init(actions: InstallActions, bootID: String, rebootRequiredFile: String) {
        self.actions = actions
        self.bootID = bootID
        self.rebootRequiredFile = rebootRequiredFile
    }

    /// After a reboot (boot id changed), what waited for it is now in force.
    func confirmRebootIfBooted(_ state: inout AgentState) -> [AgentEvent] {
        defer { state.bootID = bootID }
        guard let previous = state.bootID, previous != bootID, !state.pendingReboot.isEmpty else { return [] }
        var events: [AgentEvent] = []
        if let newest = state.pendingReboot.last(where: { $0.kind == "baseline" }) {
            state.activeBaseline = newest.id
            events.append(.recorded(.baselineInstalled, release: newest.id, "Baseline \(newest.id) is active after the reboot",
                                    level: .notice, metadata: ["baseline.id": newest.id]))
        }
        for pending in state.pendingReboot { state.installedReleases.append(pending.id) }
        state.pendingReboot = []
        do { try actions.clearRebootRequest(rebootRequiredFile) } catch {
            events.append(.logged(nil, "Failed to clear \(rebootRequiredFile): \(error), ignoring", level: .warning))
        }
        return events
    }

    /// On first start (no baseline known, none waiting), adopts the newest baseline whose files
    /// already match the disk.
    func adoptBaselineOnFirstStart(_ channel: VerifiedChannel, state: inout AgentState) -> [AgentEvent] {
        guard state.activeBaseline == nil, state.pendingReboot.isEmpty,
              let adopted = ReleasePlan.baselineToAdopt(channel.baselines, matches: { actions.matchesDisk($0.files) }) else { return [] }
        state.activeBaseline = adopted
        state.installedReleases.append(adopted)
        return [.recorded(.baselineInstalled, release: adopted, "Adopted baseline \(adopted): its files already match the disk",
                          level: .notice, metadata: ["baseline.id": adopted])]
    }

    /// Installs what `plan` asks for: a failed install is kept with its backoff (not retried before
    /// it is due), an installed one waits for a reboot, which is requested.
    func installReleases(_ plan: ReleasePlan, channel: VerifiedChannel, state: inout AgentState, now: Date) -> [AgentEvent] {
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
        let seconds = now.timeIntervalSince1970
        var events: [AgentEvent] = []
        for item in toInstall {
            let previous = state.failedInstalls.first { $0.id == item.id }
            if let previous, !previous.isDue(channelVersion: channel.version, now: seconds) { continue }
            let result: InstallResult
            do {
                result = try actions.install(item.files, item.id)
            } catch {
                let failed = FailedInstall(id: item.id, kind: item.kind, reason: "\(error)", now: seconds,
                                           attempts: (previous?.attempts ?? 0) + 1, channelVersion: channel.version)
                state.failedInstalls.removeAll { $0.id == item.id }
                state.failedInstalls.append(failed)
                events.append(.recorded(
                    .applyFailed, release: item.id,
                    "Failed to install \(item.id) (attempt \(failed.attempts); next on a new channel version or after \(RFC3339.format(failed.retryAfter))): \(error)",
                    level: .error, metadata: ["reason": "\(error)", "baseline.id": item.id]))
                continue
            }
            state.failedInstalls.removeAll { $0.id == item.id }
            state.pendingReboot.append(PendingRelease(id: item.id, kind: item.kind, reason: item.why,
                                                      installedAt: RFC3339.format(seconds), bootID: bootID))
            events.append(.recorded(.baselineInstalled, release: item.id,
                                    "Installed \(item.why) (\(result.installedDebs.count) packages, \(result.installedFiles.count) files)",
                                    level: .notice, metadata: ["baseline.id": item.id]))
            // What asks for the reboot in .pkgs: the package names ("name=version" → "name").
            let packages = result.installedDebs.map { String($0.prefix { $0 != "=" }) }
            do {
                try actions.requestReboot(rebootRequiredFile, item.id, item.why, packages)
            } catch {
                // Installed all the same: status says a reboot is required whether or not the file could be written.
                events.append(.logged(.rebootRequired, "Failed to write \(rebootRequiredFile): \(error)", level: .error,
                                      metadata: ["reason": "\(error)"]))
            }
            events.append(.recorded(.rebootRequired, release: item.id, "Reboot required: \(item.why)", level: .warning,
                                    metadata: ["reason": item.why]))
        }
        return events
    }

    /// Reboots when the policy and window allow it and something waits for a reboot, at most once a
    /// boot: a second time in the same boot is refused (logged once a run), so a host that cannot
    /// reboot, or a container that sees the host's boot id, never loops. `beforeReboot` gets the
    /// state to save and the line to log before the reboot is asked for, so both survive it.
    mutating func rebootIfDue(_ state: inout AgentState, policy: RebootPolicy, window: MaintenanceWindow?, now: Date,
                              beforeReboot: (_ state: AgentState, _ announcement: AgentEvent) -> Void) -> [AgentEvent] {
        guard !state.pendingReboot.isEmpty,
              RebootAction.shouldRebootNow(policy: policy, window: window, now: now, pending: true) else { return [] }
        guard state.autoRebootBootID != bootID else {
            guard !autoRebootRefusalLogged else { return [] }
            autoRebootRefusalLogged = true
            return [.logged(.rebootRequired,
                            "Not rebooting again: an automatic reboot was already asked for in this boot (boot id \(bootID)) and the boot id has not changed; reboot by hand",
                            level: .error)]
        }
        state.autoRebootBootID = bootID
        beforeReboot(state, .logged(.rebootRequired,
                                    "Rebooting now (reboot policy auto): \(state.pendingReboot.map(\.reason).joined(separator: "; "))",
                                    level: .notice))
        do { try actions.reboot() } catch {
            return [.logged(.rebootRequired, "Failed to reboot: \(error)", level: .error, metadata: ["reason": "\(error)"])]
        }
        return []
    }
}
