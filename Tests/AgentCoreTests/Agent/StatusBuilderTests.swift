import AgentProtocol
@testable import Artifact
import Foundation
import LinuxSystem
import Testing
@testable import AgentCore
@testable import Engine

/// The status as a pure function of the agent's facts: verdict precedence, reasons, counts.
@Suite struct StatusBuilderTests {
    private func facts(_ change: (inout StatusFacts) -> Void = { _ in }) -> StatusFacts {
        var configuration = AgentConfiguration()
        configuration.channelDirectory = "/srv/channel"
        var facts = StatusFacts(
            state: AgentState(), stateProblem: nil, records: [], excludedCount: 0, lastPause: nil, channel: nil, standing: nil,
            lastCheck: nil, plan: nil, bootID: "boot-1", faultReportsUnavailable: nil, configuration: configuration,
            processWatch: "netlink", agentVersion: "0.0.1")
        change(&facts)
        return facts
    }

    private func record(_ pid: Int32, _ state: ProcessEntry.State, reason: String? = nil) -> ProcessRecord {
        ProcessRecord(identity: ProcessIdentity(pid: ProcessID(pid), startTime: 1), executable: "/usr/bin/app\(pid)",
                      state: state, reason: reason)
    }

    private func pending(_ id: String) -> PendingRelease {
        PendingRelease(id: id, kind: "baseline", reason: "planned baseline \(id)", installedAt: "2026-12-01T00:00:00Z", bootID: "boot-1")
    }

    private func channel(_ releases: [ChannelRelease], version: Int = 7) -> VerifiedChannel {
        VerifiedChannel(version: version, expires: .distantFuture, releases: releases, keyFingerprint: "ab", indexSHA256: "cd")
    }

    @Test func nothingToSay_isUpToDate_withNoReasons() {
        let status = StatusBuilder.status(facts())
        #expect(status.verdict == .upToDate)
        #expect(status.reasons.isEmpty)
        #expect(status.processWatch == "netlink")
        #expect(status.reboot == .init(required: false, reasons: [], policy: "request"))
    }

    @Test func verdict_isTheHighestPrecedence_andEveryReasonThatHoldsIsListed() {
        let all = facts {
            $0.state.enrolled = false
            $0.state.pendingReboot = [pending("B2")]
            $0.records = [record(10, .unpatchable, reason: "traced by PID 9"), record(11, .pending, reason: "threads would not stop")]
        }
        let status = StatusBuilder.status(all)
        #expect(status.verdict == .unenrolled)
        #expect(Set(status.reasons.map(\.verdict)) == [.unenrolled, .exposed, .rebootRequired, .hotpatchPending])

        var enrolled = all
        enrolled.state.enrolled = true
        #expect(StatusBuilder.status(enrolled).verdict == .exposed)
        enrolled.records.removeFirst()
        #expect(StatusBuilder.status(enrolled).verdict == .rebootRequired)
        enrolled.state.pendingReboot = []
        #expect(StatusBuilder.status(enrolled).verdict == .hotpatchPending)
        #expect(StatusBuilder.status(enrolled).reasons == [
            .init(verdict: .hotpatchPending, message: "PID 11 (/usr/bin/app11): threads would not stop, retrying"),
        ])
    }

    @Test func unreadableStateFile_isExposed_andNamesTheProblem() {
        let status = StatusBuilder.status(facts { $0.stateProblem = "state.json: not JSON" })
        #expect(status.verdict == .exposed)
        #expect(status.reasons.first?.message == "state file unreadable, nothing is patched until it is repaired: state.json: not JSON")
    }

    @Test func channelRefusal_givesAnExposedReason_andTheChannelError() {
        let refusal = ChannelRefusal.expired(path: "/srv/channel/index.json", expires: "X", now: "Y")
        let standing = ChannelStanding.after(.refused(refusal), channelDirectory: "/srv/channel", lastVerifiedVersion: 3,
                                             everAccepted: true, missingSince: nil, keptProblem: nil)
        let status = StatusBuilder.status(facts { $0.standing = standing })
        #expect(status.verdict == .exposed)
        #expect(status.channel.error == "channel cannot be verified: \(refusal); keeping verified version 3 in force")
        #expect(status.reasons == [standing.reason!])
    }

    @Test func quarantine_isExposedOnlyWhileTheChannelStillOffersTheHotpatch() {
        let offered = HotpatchRelease(hotpatch: Hotpatch(id: "hp2", baseline: "B1", level: 2, targets: []), description: "", cves: [])
        var quarantined = facts { $0.state.quarantined = ["hp2": "crashed", "hp-gone": "crashed too"] }
        #expect(StatusBuilder.status(quarantined).reasons.isEmpty, "no channel: nothing offered")
        quarantined.channel = channel([.hotpatch(offered)])
        #expect(StatusBuilder.status(quarantined).reasons == [
            .init(verdict: .exposed, message: "hotpatch hp2 quarantined (agentctl apply hp2 to retry): crashed"),
        ])
    }

    @Test func heldHotpatches_exclusionsAndUnreadableFaultReports_areNotesThatLeaveTheHostUpToDate() {
        let status = StatusBuilder.status(facts {
            $0.state.held = ["hp3"]
            $0.excludedCount = 2
            $0.faultReportsUnavailable = "permission denied"
        })
        #expect(status.verdict == .upToDate)
        #expect(status.reasons.map(\.message) == [
            "hotpatch hp3 held by an administrator (agentctl apply hp3 to lift)",
            "2 matching process(es) excluded by configuration",
            "kernel fault reports unreadable (permission denied): the crash health check counts fault deaths of root-only processes without the kernel's confirmation",
        ])
    }

    @Test func autoRebootAlreadyAskedInThisBoot_addsTheRebootByHandReason() {
        let status = StatusBuilder.status(facts {
            $0.state.pendingReboot = [pending("B2")]
            $0.state.autoRebootBootID = "boot-1"
        })
        #expect(status.reasons.map(\.verdict) == [.rebootRequired, .rebootRequired])
        #expect(status.reasons.last?.message.hasPrefix("automatic reboot already requested in this boot") == true)
        #expect(status.reboot.required)
        #expect(status.baseline.pending == ["B2"])
    }

    @Test func hotpatchInForce_listsTheCVEsOfEveryLevelUpToTheDesiredOne() {
        func level(_ n: Int) -> ChannelRelease {
            .hotpatch(HotpatchRelease(hotpatch: Hotpatch(id: "hp\(n)", baseline: "B1", level: n, targets: []),
                                      description: "level \(n)", cves: ["CVE-2026-000\(n)"]))
        }
        let releases = [level(1), level(2), level(3)]
        let status = StatusBuilder.status(facts {
            $0.channel = channel(releases)
            $0.plan = ReleasePlan.decide(releases: releases, activeBaseline: "B1", installed: [], pendingReboot: [],
                                         quarantined: [], held: ["hp3"], enrolled: true)
            $0.records = [record(5, .patched), record(6, .patched), record(7, .unpatched)]
        })
        #expect(status.hotpatch == .init(id: "hp2", level: 2, cves: ["CVE-2026-0001", "CVE-2026-0002"], description: "level 2"))
        #expect(status.processes == .init(patched: 2, pending: 0, unpatchable: 0))
        #expect(status.channel.version == 7)
    }

    @Test func summary_isTheVerdictBaselineHotpatchCountsAndReboot() {
        var status = StatusBuilder.status(facts {
            $0.state.activeBaseline = "B1"
            $0.state.pendingReboot = [pending("B2")]
        })
        status.hotpatch = .init(id: "hp2", level: 2, cves: [], description: nil)
        #expect(StatusBuilder.summary(status) == "reboot required; baseline B1; hotpatch hp2 level 2; 0 patched, 0 pending, 0 unpatchable; reboot required")
        #expect(StatusBuilder.summary(StatusBuilder.status(facts())) == "up to date; 0 patched, 0 pending, 0 unpatchable")
    }
}
