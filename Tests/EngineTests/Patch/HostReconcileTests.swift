import Artifact
import Engine
import Foundation
import HotpatchFixtures
import LinuxSystem
import TestSupport
import Testing

extension LivePatchTests {
    @Test func hostReconcile_scansOnTheWorkersThenPatches_reportingEveryMatchInPidOrderWithExclusions() throws {
        let hotpatch = try Live.victimHotpatches().level1
        // The sixth victim runs a copy of the executable (same build-id) that a glob excludes: never attached.
        let scratch = try TemporaryDirectory(prefix: "host-reconcile")
        defer { scratch.remove() }
        let copy = scratch.file("excluded-victim")
        try FileManager.default.copyItem(atPath: try Live.builder.victim(), toPath: copy)
        let excluded = try RunningProcess(copy, ["--interval-ms", "20", "--threads", "1"])
        _ = try excluded.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        let victims = try (0..<5).map { _ in try Live.startVictim(["--threads", "1"]) } + [excluded]
        defer { victims.forEach { $0.stop() } }
        let excludedPid = excluded.pid
        let executable = try ProcFS.executablePath(of: ProcessID(excludedPid))
        let policy = ExclusionPolicy(executableGlobs: ["/nonexistent/*", scratch.path + "/*"])
        let host = HostPatcher(workers: 3)
        // Unrelated pids (this test process, PID 1, a pid that does not exist) are scanned and skipped.
        let pids = [ProcessID.current, ProcessID(1), ProcessID(Int32.max - 7)] + victims.map { ProcessID($0.pid) }.reversed()

        let reports = host.reconcile(among: pids, desired: .cumulative(desired: hotpatch, levels: [hotpatch]), known: [hotpatch],
                                     excluding: policy)

        #expect(reports.map(\.match.process.pid.rawValue) == victims.map(\.pid).reversed(), "every victim, in the order asked")
        for report in reports {
            let pid = report.match.process.pid.rawValue
            #expect(report.cgroup == nil, "PID \(pid): no unit is excluded, so no cgroup is read")
            switch report.result {
            case let .excluded(why):
                #expect(pid == excludedPid, "only the excluded victim is left alone: \(why)")
                #expect(why == .executable(glob: scratch.path + "/*"), "\(executable)")
            case let .reconciled(patch):
                #expect(pid != excludedPid, "the excluded victim was attached")
                #expect(patch.outcome == .applied, "PID \(pid): \(patch.outcome)")
                // Read with the user ids on the worker: the caller need not read the process again.
                #expect(report.userIDs?.real == getuid(), "PID \(pid)")
                #expect(report.command == (try ProcFS.status(of: ProcessID(pid))).name, "PID \(pid)")
            }
        }
        for victim in victims.prefix(5) { #expect(try Live.behaviour(victim) == Live.level1) }
        #expect(try Live.behaviour(victims[5]) == Live.original)
        for victim in victims { #expect(victim.isAlive) }

        // With a unit to exclude, each process's cgroup is read to look for it, and reported.
        let unitPolicy = ExclusionPolicy(executableGlobs: policy.executableGlobs, units: ["no-such-unit.service"])
        let reverted = host.reconcile(among: pids, desired: .cumulative(desired: nil, levels: [hotpatch]), known: [hotpatch],
                                      excluding: unitPolicy)
        #expect(reverted.count == 6)
        for report in reverted where report.match.process.pid.rawValue != excludedPid {
            #expect(report.cgroup != nil && report.cgroup == ProcFS.cgroup(of: report.match.process.pid), "PID \(report.match.process.pid)")
        }
        for victim in victims { #expect(try Live.behaviour(victim) == Live.original) }
    }
}
