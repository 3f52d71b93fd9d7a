import Engine
import Foundation
import HotpatchFixtures
import Testing

/// Processes under seccomp filters: the filters are evaluated for each call before it is injected.
extension LivePatchTests {
    private func applyLevel1(_ arguments: [String]) throws -> (ProcessPatchReport, RunningProcess) {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"] + arguments)
        return (try Live.reconcile(victim, desired: target, known: [target]), victim)
    }

    @Test func apply_whenSeccompDeniesMmapWithErrno_isUnpatchableNamingTheCallAndLeavesTargetAlone() throws {
        let (report, victim) = try applyLevel1(["--seccomp", "deny-mmap-errno"])
        defer { victim.stop() }
        guard case let .unpatchable(.seccompDenies(call, number)) = report.outcome else {
            Issue.record("\(report.outcome)")
            return
        }
        #expect(call.hasPrefix("mmap"))
        #expect(number == EPERM)
        #expect(report.injectedSystemCalls == 0)
        // The filters are read with every thread held: that refused load's holds and pause count.
        #expect(report.holds >= 1, "holds: \(report.holds)")
        #expect(report.loadPauseMicroseconds != nil)
        #expect(victim.isAlive)
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func apply_whenSeccompKillsOnMmap_neverInjectsAndTargetLives() throws {
        let (report, victim) = try applyLevel1(["--seccomp", "kill-mmap"])
        defer { victim.stop() }
        guard case let .unpatchable(.seccompWouldKill(call, action)) = report.outcome else {
            Issue.record("\(report.outcome)")
            return
        }
        #expect(call.hasPrefix("mmap"))
        #expect(action == "kill the process")
        Thread.sleep(forTimeInterval: 0.1)
        #expect(victim.isAlive)
    }

    @Test func apply_whenSeccompTrapsOnMmap_neverInjects() throws {
        let (report, victim) = try applyLevel1(["--seccomp", "trap-mmap"])
        defer { victim.stop() }
        guard case .unpatchable(.seccompWouldKill(_, let action)) = report.outcome else {
            Issue.record("\(report.outcome)")
            return
        }
        #expect(action.contains("SIGSYS"))
        #expect(victim.isAlive)
    }

    @Test func apply_whenSeccompDeniesOpenatWithErrno_loadsThroughAMemfdInstead() throws {
        let (report, victim) = try applyLevel1(["--seccomp", "deny-openat-errno"])
        defer { victim.stop() }
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(!Live.mapsLines(victim.pid, containing: "/memfd:hotpatch:").isEmpty)
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func apply_whenSeccompKillsOnOpenat_neverCallsItAndUsesAMemfd() throws {
        let (report, victim) = try applyLevel1(["--seccomp", "kill-openat"])
        defer { victim.stop() }
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(victim.isAlive)
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func apply_underSystemdMemoryDenyWriteExecuteFilter_succeeds() throws {
        let (report, victim) = try applyLevel1(["--seccomp", "systemd-mdwe"])
        defer { victim.stop() }
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(try Live.behaviour(victim) == Live.level1)
        #expect(Live.mapsLines(victim.pid, containing: "patch_level1").allSatisfy { !$0.contains("wx") })
    }

    @Test func apply_underPrctlMemoryDenyWriteExecute_succeeds() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let probe = try RunningProcess(Live.builder.victim(), ["--threads", "1", "--mdwe", "--interval-ms", "20"])
        defer { probe.stop() }
        let first = try probe.waitForLine { !$0.hasPrefix("starting") }
        if first.hasPrefix("mdwe-unsupported") {
            print("PR_SET_MDWE is not supported by this kernel (\(first)); skipping")
            return
        }
        #expect(first.hasPrefix("ready"))
        let report = try Live.reconcile(probe, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(try Live.behaviour(probe) == Live.level1)
    }
}
