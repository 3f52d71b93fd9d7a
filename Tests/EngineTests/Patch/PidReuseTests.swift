import Artifact
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

/// A process found by a scan that exits before its patch, its pid then taken by another process
/// (the same program, so the same objects at other addresses): the patch must refuse as gone and
/// leave the newcomer exactly as it was, whatever the two processes' start times say.
extension LivePatchTests {
    @Test func reconcile_whenThePidIsReusedAfterTheScan_refusesAsGoneAndLeavesTheNewProcessAlone() throws {
        let hotpatch = try Live.victimHotpatches().level1
        let buildIDs = Set(hotpatch.targets.map(\.buildID))
        let finder = TargetFinder(cache: ObjectCache())
        let patcher = Patcher(cache: finder.cache)
        for _ in 0..<20 {
            let scanned = try Live.startVictim(["--threads", "1"])
            let found = try #require(finder.processWithLayout(buildIDs: buildIDs, pid: ProcessID(scanned.pid)))
            scanned.stop()
            try handOutNext(pid: scanned.pid)
            let newcomer = try Live.startVictim(["--threads", "1"])
            defer { newcomer.stop() }
            guard newcomer.pid == scanned.pid else { continue }

            let report = try Live.tracer.perform {
                patcher.reconcile(found.match, desired: .cumulative(desired: hotpatch, levels: [hotpatch]),
                                  known: ObjectFix.all(of: [hotpatch]), layout: found.layout)
            }

            #expect(report.outcome == .unpatchable(.processGone), "\(report.outcome)")
            #expect(report.holds == 0 && report.injectedSystemCalls == 0)
            let status = try ProcFS.status(of: ProcessID(newcomer.pid))
            #expect(status.tracer == nil && status.state != "T" && status.state != "t")
            let image = PatchLoader.name(of: hotpatch.targets[0].patchObjectPath)
            #expect(Live.mapsLines(newcomer.pid, containing: image).isEmpty, "no patch image mapped in the newcomer")
            #expect(try Live.behaviour(newcomer) == Live.original)
            return
        }
        Issue.record("the scanned victim's pid went to another process first in all 20 tries")
    }
}
