import AgentProtocol
import Artifact
import Foundation
import LinuxSystem
import Testing
@testable import AgentCore
@testable import Engine

/// How each patch report changes what the agent knows of a process, and what it logs; values only.
@Suite struct ProcessLedgerTests {
    private let desired = Hotpatch(id: "hp2", baseline: "B1", level: 2, targets: [])
    private let now = Date(timeIntervalSince1970: 1_800_000_000)

    private func match(_ pid: Int32, startTime: UInt64 = 100, library: String = "/usr/lib/libdemo.so") -> ProcessMatch {
        ProcessMatch(process: ProcessIdentity(pid: ProcessID(pid), startTime: startTime), objects: [object(library)])
    }

    private func object(_ library: String, buildID: String = "abcd") -> LoadedObject {
        LoadedObject(path: library, isDeleted: false, buildID: BuildID(hex: buildID), loadBias: 0x7f00_0000_0000,
                     mappings: [], readablePath: library)
    }

    private func report(_ pid: Int32, _ outcome: PatchOutcome, pause: UInt64? = nil, load: UInt64? = nil,
                        startTime: UInt64 = 100, library: String = "/usr/lib/libdemo.so") -> HostProcessReport {
        var patch = ProcessPatchReport(pid: ProcessID(pid), startTime: startTime, objectPath: "/usr/lib/libdemo.so", outcome: outcome,
                                       pauseMicroseconds: pause, totalMicroseconds: 10, threadCount: 1, evacuatedThreads: 0,
                                       injectedSystemCalls: 0)
        patch.loadPauseMicroseconds = load
        return HostProcessReport(match: match(pid, startTime: startTime, library: library), executable: "/usr/bin/app",
                                 result: .reconciled(patch))
    }

    private func excluded(_ pid: Int32, _ why: ProcessExclusion) -> HostProcessReport {
        HostProcessReport(match: match(pid), executable: "/usr/bin/app", result: .excluded(why))
    }

    @Test func applied_marksPatched_recordsTheAppliedEventWithPauses_andAsksToNoteItForHealth() throws {
        var ledger = ProcessLedger()
        let transitions = ledger.take([report(40, .applied, pause: 120, load: 900)], fullPass: true, desired: desired,
                                      healthWindow: 60, now: now)
        let record = try #require(ledger.records[ProcessID(40)])
        #expect(record.state == .patched)
        #expect(record.hotpatch == "hp2")
        #expect(record.patchedAt == now)
        #expect(record.pauseUsec == 120)
        #expect(ledger.lastPause == 120)
        let transition = try #require(transitions.first)
        #expect(transition.followUp == .notePatched)
        #expect(transition.event?.event == .applied)
        #expect(transition.event?.inHistory == true)
        #expect(transition.event?.release == "hp2")
        #expect(transition.event?.message == "Applied hotpatch hp2 to PID 40 (/usr/bin/app), pause 120 µs, load pause 900 µs")
        #expect(transition.event?.metadata["pause.usec"] == "120")
        #expect(transition.event?.metadata["load.pause.usec"] == "900")
        #expect(transition.event?.metadata["baseline.id"] == "B1")
    }

    @Test func unpatchable_recordsTheReason_andLogsOnlyWhenTheReasonChanges() throws {
        var ledger = ProcessLedger()
        let reason = UnpatchableReason.tracedBy(tracer: ThreadID(77))
        let first = ledger.take([report(41, .unpatchable(reason))], fullPass: true, desired: desired, healthWindow: 60, now: now)
        #expect(ledger.records[ProcessID(41)]?.state == .unpatchable)
        #expect(ledger.records[ProcessID(41)]?.reason == "traced by PID 77")
        #expect(first.first?.event?.event == .processUnpatchable)
        #expect(first.first?.event?.message == "PID 41 (/usr/bin/app) cannot be patched: traced by PID 77")
        #expect(first.first?.event?.metadata["reason"] == "traced by PID 77")

        let again = ledger.take([report(41, .unpatchable(reason))], fullPass: true, desired: desired, healthWindow: 60, now: now)
        #expect(again.isEmpty, "the same reason again says nothing new")
        let other = ledger.take([report(41, .unpatchable(.seccompStrictMode))], fullPass: true, desired: desired, healthWindow: 60, now: now)
        #expect(other.first?.event?.event == .processUnpatchable)
    }

    @Test func busy_isPending_withTheReason_andOnlyADebugLine() {
        var ledger = ProcessLedger()
        let transitions = ledger.take([report(42, .busy(reason: "threads would not stop"))], fullPass: true, desired: desired,
                                      healthWindow: 60, now: now)
        #expect(ledger.hasPending)
        #expect(ledger.records[ProcessID(42)]?.reason == "threads would not stop")
        #expect(transitions.first?.event?.level == .debug)
        #expect(transitions.first?.event?.event == nil)
        #expect(transitions.first?.event?.inHistory == false)
    }

    @Test func reverted_clearsTheHotpatch_andRecordsTheRevert() {
        var ledger = ProcessLedger()
        _ = ledger.take([report(43, .applied)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        let transitions = ledger.take([report(43, .reverted)], fullPass: true, desired: nil, healthWindow: 60, now: now)
        #expect(ledger.records[ProcessID(43)]?.state == .unpatched)
        #expect(ledger.records[ProcessID(43)]?.hotpatch == nil)
        #expect(transitions.first?.event?.event == .reverted)
        #expect(transitions.first?.event?.message == "Reverted our hotpatch in PID 43 (/usr/bin/app)")
    }

    @Test func alreadyApplied_withinTheHealthWindow_asksToLookAtCredentialsAgain_andAfterItDoesNot() {
        var ledger = ProcessLedger()
        _ = ledger.take([report(44, .applied)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        let soon = ledger.take([report(44, .alreadyApplied)], fullPass: true, desired: desired, healthWindow: 60,
                               now: now.addingTimeInterval(30))
        #expect(soon.map(\.followUp) == [.observeCredentials])
        #expect(soon.first?.event == nil)
        let later = ledger.take([report(44, .alreadyApplied)], fullPass: true, desired: desired, healthWindow: 60,
                                now: now.addingTimeInterval(61))
        #expect(later.isEmpty)
        #expect(ledger.records[ProcessID(44)]?.state == .patched)
    }

    @Test func processGone_isForgotten_andAReusedPidStartsAFreshRecord() {
        var ledger = ProcessLedger()
        _ = ledger.take([report(45, .applied)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        _ = ledger.take([report(45, .unpatchable(.processGone))], fullPass: false, desired: desired, healthWindow: 60, now: now)
        #expect(ledger.records[ProcessID(45)] == nil)

        _ = ledger.take([report(46, .applied)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        _ = ledger.take([report(46, .notApplied, startTime: 999)], fullPass: false, desired: desired, healthWindow: 60, now: now)
        #expect(ledger.records[ProcessID(46)]?.patchedAt == nil, "another process with the same pid is not the one patched")
    }

    @Test func fullPass_forgetsProcessesItNoLongerFinds_whileAPassOverOnePidKeepsTheOthers() {
        var ledger = ProcessLedger()
        _ = ledger.take([report(47, .applied), report(48, .applied)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        _ = ledger.take([report(48, .alreadyApplied)], fullPass: false, desired: desired, healthWindow: 60, now: now)
        #expect(Set(ledger.records.keys) == [ProcessID(47), ProcessID(48)])
        _ = ledger.take([report(48, .alreadyApplied)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        #expect(Set(ledger.records.keys) == [ProcessID(48)])
    }

    @Test func exclusions_byConfigurationAreCounted_theAgentItselfIsNeither_recordedNorCounted() {
        var ledger = ProcessLedger()
        let transitions = ledger.take([excluded(50, .executable(glob: "/usr/bin/*")), excluded(51, .unit("db.service")),
                                       excluded(52, .agentItself)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        #expect(transitions.isEmpty)
        #expect(ledger.records.isEmpty)
        #expect(ledger.excluded == [ProcessID(50), ProcessID(51)])
        // A pass over one new process keeps the count of the others.
        _ = ledger.take([report(53, .applied)], fullPass: false, desired: desired, healthWindow: 60, now: now)
        #expect(ledger.excluded.count == 2)
        _ = ledger.take([report(53, .alreadyApplied)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        #expect(ledger.excluded.isEmpty)
    }

    /// A process mapping libA (whose fix is level 1's) and libB (level 2's), patched at level 2.
    private func twoObjectReport(_ outcome: PatchOutcome, refusing: PatchOutcome? = nil, inspected: Bool = true) -> HostProcessReport {
        let match = ProcessMatch(process: ProcessIdentity(pid: ProcessID(60), startTime: 100),
                                 objects: [object("/usr/lib/libA.so", buildID: "aa01"), object("/usr/lib/libB.so", buildID: "bb02")])
        var patch = ProcessPatchReport(pid: ProcessID(60), startTime: 100, objectPath: "/usr/lib/libA.so", outcome: outcome,
                                       pauseMicroseconds: 80, totalMicroseconds: 10, threadCount: 1, evacuatedThreads: 0,
                                       injectedSystemCalls: 0)
        patch.objects = [
            ObjectPatchReport(path: "/usr/lib/libA.so", buildID: BuildID(hex: "aa01"),
                              release: inspected ? FixRelease(id: "hp1", level: 1) : nil, inspected: inspected),
            ObjectPatchReport(path: "/usr/lib/libB.so", buildID: BuildID(hex: "bb02"),
                              release: inspected && refusing == nil ? FixRelease(id: "hp2", level: 2) : nil, inspected: inspected,
                              written: refusing == nil, refusal: refusing),
        ]
        return HostProcessReport(match: match, executable: "/usr/bin/app", result: .reconciled(patch))
    }

    @Test func processMappingTwoTargetedObjects_getsOneTransition_andEachObjectShowsTheFixItRuns() throws {
        var ledger = ProcessLedger()
        let transitions = ledger.take([twoObjectReport(.applied)], fullPass: true, desired: desired, healthWindow: 60, now: now)

        #expect(transitions.map(\.followUp) == [.notePatched])
        #expect(transitions.first?.match.objects.map(\.path) == ["/usr/lib/libA.so", "/usr/lib/libB.so"])
        let entry = try #require(ledger.records[ProcessID(60)]?.entry())
        #expect(entry.state == .patched)
        #expect(entry.hotpatch == "hp2")
        #expect(entry.objects == [
            ProcessEntry.MappedObject(path: "/usr/lib/libA.so", buildId: "aa01", hotpatch: "hp1", level: 1),
            ProcessEntry.MappedObject(path: "/usr/lib/libB.so", buildId: "bb02", hotpatch: "hp2", level: 2),
        ])
        let event = try #require(transitions.first?.event)
        #expect(event.message == "Applied hotpatch hp2 to PID 60 (/usr/bin/app) [/usr/lib/libA.so hp1 (level 1), /usr/lib/libB.so hp2 (level 2)], pause 80 µs")
        #expect(event.metadata["build.id"] == "aa01 bb02")
        #expect(event.metadata["hotpatch.objects"] == "/usr/lib/libA.so hp1 (level 1), /usr/lib/libB.so hp2 (level 2)")
    }

    @Test func oneObjectRefusing_makesTheProcessUnpatchable_namingThatObject() throws {
        var ledger = ProcessLedger()
        let reason = UnpatchableReason.entryBytesDiffer(symbol: "b_fn", address: 0x1000)
        _ = ledger.take([twoObjectReport(.unpatchable(reason), refusing: .unpatchable(reason))], fullPass: true, desired: desired,
                        healthWindow: 60, now: now)

        let entry = try #require(ledger.records[ProcessID(60)]?.entry())
        #expect(entry.state == .unpatchable)
        #expect(entry.reason == "/usr/lib/libB.so: \(reason)")
        #expect(entry.objects.map(\.reason) == [nil, "unpatchable: \(reason)"])
        // What libA runs was read from the process: level 1's fix, still in force.
        #expect(entry.objects.first?.hotpatch == "hp1")
    }

    @Test func objectsNotReadThisTime_keepWhatWasLastReadFromTheProcess() throws {
        var ledger = ProcessLedger()
        _ = ledger.take([twoObjectReport(.applied)], fullPass: true, desired: desired, healthWindow: 60, now: now)
        _ = ledger.take([twoObjectReport(.busy(reason: "threads did not stop"), inspected: false)], fullPass: true,
                        desired: desired, healthWindow: 60, now: now)

        let entry = try #require(ledger.records[ProcessID(60)]?.entry())
        #expect(entry.state == .pending)
        #expect(entry.objects.map(\.hotpatch) == ["hp1", "hp2"])
    }
}
