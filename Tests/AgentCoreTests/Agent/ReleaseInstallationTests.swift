@testable import Artifact
import Foundation
import Synchronization
import Testing
@testable import AgentCore
@testable import Engine

/// Installing baselines and fixes, adopting, confirming after a reboot and rebooting, on the state
/// alone: the host's actions are replaced by ones that write down what was asked of them.
@Suite struct ReleaseInstallationTests {
    /// What the actions were asked to do, in order.
    private final class Journal: Sendable {
        let calls = Mutex<[String]>([])
        func note(_ call: String) { calls.withLock { $0.append(call) } }
        var all: [String] { calls.withLock { $0 } }
    }

    private let journal = Journal()
    private let now = Date(timeIntervalSince1970: 1_800_000_000)

    private func actions(failing: Set<String> = [], onDisk: Set<String> = [], rebootFails: Bool = false) -> InstallActions {
        let journal = self.journal
        return InstallActions(
            install: { _, id in
                journal.note("install \(id)")
                if failing.contains(id) { throw AgentCoreError.installFailed(releaseID: id, reason: "dpkg exited with status 1", rollback: "nothing to roll back") }
                return InstallResult(releaseID: id, installedDebs: ["libdemo=2.0"], installedFiles: [])
            },
            matchesDisk: { files in files.allSatisfy { onDisk.contains($0.channelPath) } },
            requestReboot: { file, id, _, packages in journal.note("request \(file) \(id) \(packages.joined(separator: ","))") },
            clearRebootRequest: { file in journal.note("clear \(file)") },
            reboot: {
                journal.note("reboot")
                if rebootFails { throw AgentCoreError.commandFailed(command: "systemctl reboot", status: 1, output: "") }
            })
    }

    private func installation(_ actions: InstallActions, boot: String = "boot-2") -> ReleaseInstallation {
        ReleaseInstallation(actions: actions, bootID: boot, rebootRequiredFile: "/run/reboot-required")
    }

    private func file(_ path: String) -> InstallableFile {
        InstallableFile(kind: .file(destination: "/etc/" + path, mode: 0o644), channelPath: path, storePath: "/store/" + path, sha256: "00", length: 1)
    }

    private func channel(_ releases: [ChannelRelease], version: Int = 3) -> VerifiedChannel {
        VerifiedChannel(version: version, expires: .distantFuture, releases: releases, keyFingerprint: "ab", indexSHA256: "cd")
    }

    private func baseline(_ id: String, files: [InstallableFile] = []) -> ChannelRelease {
        .baseline(BaselineRelease(id: id, planned: true, description: "", cves: [], files: files))
    }

    private func plan(_ channel: VerifiedChannel, _ state: AgentState) -> ReleasePlan {
        ReleasePlan.decide(releases: channel.releases, activeBaseline: state.activeBaseline, installed: Set(state.installedReleases),
                           pendingReboot: Set(state.pendingReboot.map(\.id)), quarantined: [], held: [], enrolled: true)
    }

    @Test func newBaseline_isInstalled_waitsForAReboot_andTheRebootIsRequestedWithItsPackages() {
        var state = AgentState()
        state.activeBaseline = "B1"
        let channel = channel([baseline("B1"), baseline("B2")])
        let events = installation(actions()).installReleases(plan(channel, state), channel: channel, state: &state, now: now)
        #expect(state.pendingReboot.map(\.id) == ["B2"])
        #expect(state.pendingReboot.first?.bootID == "boot-2")
        #expect(journal.all == ["install B2", "request /run/reboot-required B2 libdemo"])
        #expect(events.map(\.event) == [.baselineInstalled, .rebootRequired])
        #expect(events.map(\.message) == ["Installed planned baseline B2 (1 packages, 0 files)", "Reboot required: planned baseline B2"])
    }

    @Test func failingInstall_isRecordedWithItsReason_andNotRetriedBeforeItIsDue() throws {
        var state = AgentState()
        state.activeBaseline = "B1"
        let channel = channel([baseline("B1"), baseline("B2")])
        let installation = installation(actions(failing: ["B2"]))
        let events = installation.installReleases(plan(channel, state), channel: channel, state: &state, now: now)
        let failed = try #require(state.failedInstalls.first)
        #expect(failed.id == "B2")
        #expect(failed.attempts == 1)
        #expect(failed.reason.contains("dpkg exited with status 1"))
        #expect(state.pendingReboot.isEmpty)
        #expect(events.map(\.event) == [.applyFailed])
        #expect(events.first?.level == .error)
        #expect(events.first?.message.hasPrefix("Failed to install B2 (attempt 1; next on a new channel version or after ") == true)

        let again = installation.installReleases(plan(channel, state), channel: channel, state: &state, now: now.addingTimeInterval(1))
        #expect(again.isEmpty, "within the backoff nothing is tried or said")
        #expect(journal.all == ["install B2"])
        let newIndex = self.channel([baseline("B1"), baseline("B2")], version: 4)
        _ = installation.installReleases(plan(newIndex, state), channel: newIndex, state: &state, now: now.addingTimeInterval(2))
        #expect(journal.all == ["install B2", "install B2"], "a new channel version retries at once")
        #expect(state.failedInstalls.first?.attempts == 2)
    }

    @Test func firstStart_adoptsTheNewestBaselineWhoseFilesMatchTheDisk_withoutInstalling() {
        var state = AgentState()
        let channel = channel([baseline("B1", files: [file("a")]), baseline("B2", files: [file("b")])])
        let events = installation(actions(onDisk: ["a"])).adoptBaselineOnFirstStart(channel, state: &state)
        #expect(state.activeBaseline == "B1")
        #expect(state.installedReleases == ["B1"])
        #expect(events.map(\.message) == ["Adopted baseline B1: its files already match the disk"])
        #expect(journal.all.isEmpty)
    }

    @Test func afterTheReboot_whatWaitedIsInForce_andTheRequestIsCleared() {
        var state = AgentState()
        state.bootID = "boot-1"
        state.activeBaseline = "B1"
        state.pendingReboot = [PendingRelease(id: "B2", kind: "baseline", reason: "planned baseline B2", installedAt: "t", bootID: "boot-1"),
                               PendingRelease(id: "F1", kind: "fix", reason: "fix F1", installedAt: "t", bootID: "boot-1")]
        let events = installation(actions()).confirmRebootIfBooted(&state)
        #expect(state.activeBaseline == "B2")
        #expect(state.installedReleases == ["B2", "F1"])
        #expect(state.pendingReboot.isEmpty)
        #expect(state.bootID == "boot-2")
        #expect(journal.all == ["clear /run/reboot-required"])
        #expect(events.map(\.message) == ["Baseline B2 is active after the reboot"])
    }

    @Test func sameBoot_confirmsNothing() {
        var state = AgentState()
        state.bootID = "boot-2"
        state.pendingReboot = [PendingRelease(id: "B2", kind: "baseline", reason: "r", installedAt: "t", bootID: "boot-2")]
        #expect(installation(actions()).confirmRebootIfBooted(&state).isEmpty)
        #expect(state.pendingReboot.count == 1)
        #expect(journal.all.isEmpty)
    }

    @Test func autoReboot_happensOnceABoot_andASecondIsRefusedAndLoggedOnce() {
        var state = AgentState()
        state.pendingReboot = [PendingRelease(id: "B2", kind: "baseline", reason: "planned baseline B2", installedAt: "t", bootID: "boot-2")]
        var installation = installation(actions())
        var saved: [AgentState] = []
        var announced: [AgentEvent] = []
        let first = installation.rebootIfDue(&state, policy: .auto, window: nil, now: now) { saved.append($0); announced.append($1) }
        #expect(first.isEmpty)
        #expect(journal.all == ["reboot"])
        #expect(saved.map(\.autoRebootBootID) == ["boot-2"], "the request is saved before the reboot is asked for")
        #expect(announced.map(\.message) == ["Rebooting now (reboot policy auto): planned baseline B2"])

        let second = installation.rebootIfDue(&state, policy: .auto, window: nil, now: now) { _, _ in Issue.record("rebooted twice") }
        #expect(second.map(\.event) == [.rebootRequired])
        #expect(second.first?.message.hasPrefix("Not rebooting again: an automatic reboot was already asked for in this boot (boot id boot-2)") == true)
        let third = installation.rebootIfDue(&state, policy: .auto, window: nil, now: now) { _, _ in Issue.record("rebooted twice") }
        #expect(third.isEmpty, "the refusal is logged once a run")
        #expect(journal.all == ["reboot"])
    }

    @Test func rebootPolicyRequest_neverReboots_andAFailedRebootIsLogged() {
        var state = AgentState()
        state.pendingReboot = [PendingRelease(id: "B2", kind: "baseline", reason: "r", installedAt: "t", bootID: "boot-2")]
        var request = installation(actions())
        #expect(request.rebootIfDue(&state, policy: .request, window: nil, now: now) { _, _ in }.isEmpty)
        #expect(journal.all.isEmpty)

        var failing = installation(actions(rebootFails: true))
        let events = failing.rebootIfDue(&state, policy: .auto, window: nil, now: now) { _, _ in }
        #expect(events.map(\.message).first?.hasPrefix("Failed to reboot: ") == true)
    }
}
