import Engine
import Foundation
import Glibc
import LinuxSystem
import Testing
@testable import AgentCore

/// What the health watch makes of a patched process's end: quarantine, a rate-limited note, or
/// nothing; on values alone (no kernel fault log opened: the witness is "unavailable").
@Suite struct HealthExitTests {
    private static let root = ProcessCredentials(real: 0, effective: 0, saved: 0, fileSystem: 0)
    private static let user = ProcessCredentials(real: 1000, effective: 1000, saved: 1000, fileSystem: 1000)
    private let pid = ProcessID(5100)
    private let patchedAt = Date(timeIntervalSince1970: 1_800_000_000)

    private func watch(credentials: ProcessCredentials? = root) -> HealthWatch {
        var record = ProcessRecord(identity: ProcessIdentity(pid: pid, startTime: 1), executable: "/usr/sbin/server",
                                   state: .patched, hotpatch: "hp1", patchedAt: patchedAt)
        record.credentials = credentials
        var health = HealthWatch()
        health.watch(record, window: 60, now: patchedAt)
        return health
    }

    private func assess(_ health: inout HealthWatch, signal: Int32?, after seconds: Double, state: inout AgentState,
                        listed: ProcessRecord? = nil, credentialsNow: ProcessCredentials? = root) -> HealthWatch.ExitAssessment {
        health.assessExit(of: pid, signal: signal, listed: listed, credentialsNow: credentialsNow, window: 60,
                          kernelReportsFaults: true, state: &state, now: patchedAt.addingTimeInterval(seconds),
                          earliestReport: { _ in 0 })
    }

    @Test func faultSignalInsideTheWindow_ofARootOnlyProcess_quarantinesTheHotpatch() {
        var health = watch()
        var state = AgentState()
        let assessment = assess(&health, signal: SIGSEGV, after: 5, state: &state)
        #expect(assessment.quarantined == "hp1")
        #expect(state.quarantined["hp1"]?.hasPrefix("PID 5100 (/usr/sbin/server) died of SIGSEGV 5s after hotpatch hp1 was applied: ") == true)
        #expect(assessment.events.map(\.event) == [.quarantined])
        #expect(assessment.events.first?.inHistory == true)
        #expect(assessment.events.first?.level == .error)
        #expect(health.watched[pid] == nil, "a process is judged once")
    }

    @Test func faultSignalAfterTheWindow_saysNothing_andForgetsTheProcess() {
        var health = watch()
        var state = AgentState()
        let assessment = assess(&health, signal: SIGSEGV, after: 61, state: &state)
        #expect(assessment == .init())
        #expect(state.quarantined.isEmpty)
        #expect(health.watched[pid] == nil)
    }

    @Test func normalExit_orAProcessRevertedSince_saysNothing() {
        var state = AgentState()
        var exited = watch()
        #expect(assess(&exited, signal: nil, after: 5, state: &state) == .init())
        var reverted = watch()
        let listed = ProcessRecord(identity: ProcessIdentity(pid: pid, startTime: 1), executable: "/usr/sbin/server", state: .unpatched)
        #expect(assess(&reverted, signal: SIGSEGV, after: 5, state: &state, listed: listed) == .init())
        #expect(state.quarantined.isEmpty)
    }

    @Test func deathAUserCouldCause_isOnlyNoted_notKeptInHistory_andRateLimited() throws {
        var state = AgentState()
        var health = watch(credentials: Self.user)
        let first = assess(&health, signal: SIGSEGV, after: 5, state: &state, credentialsNow: Self.user)
        #expect(first.quarantined == nil)
        let note = try #require(first.events.first)
        #expect(note.event == .healthIgnored)
        #expect(note.inHistory == false)
        #expect(note.metadata["target.uid"] == "1000")
        #expect(note.message.contains(", ignored: it ran with uids real 1000"))

        // Ten notes a minute at most: the eleventh death within it is not logged.
        var notes = 1
        for _ in 0..<10 {
            var record = try #require(watch(credentials: Self.user).watched[pid])
            record.patchedAt = patchedAt
            health.watch(record, window: 60, now: patchedAt)
            notes += assess(&health, signal: SIGABRT, after: 5, state: &state, credentialsNow: Self.user).events.count
        }
        #expect(notes == 10)
        #expect(state.quarantined.isEmpty)
    }

    @Test func processThatDroppedRootAfterItWasPatched_doesNotCount() {
        var state = AgentState()
        var health = watch()
        let assessment = assess(&health, signal: SIGSEGV, after: 5, state: &state, credentialsNow: Self.user)
        #expect(assessment.quarantined == nil)
        #expect(assessment.events.map(\.event) == [.healthIgnored])
    }
}
