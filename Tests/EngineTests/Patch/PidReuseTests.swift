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

    @Test func stopAllThreads_whenAListedThreadIdIsAnotherProcesssThread_letsThatThreadGoAtOnceAndHoldsTheRest() throws {
        let held = try Live.startVictim(["--threads", "2"])
        defer { held.stop() }
        let other = try Live.startVictim(["--threads", "2"])
        defer { other.stop() }
        let pid = ProcessID(held.pid), otherPid = ProcessID(other.pid)
        let own = try ProcFS.threadIDs(of: pid)
        // A worker of the other process stands for an id freed by an exit of `held`'s own thread
        // and taken by the other process's new thread between the listing and the seize.
        let stranger = try #require(try ProcFS.threadIDs(of: otherPid).first { $0 != otherPid.mainThread })
        let directory = try #require(ProcessDirectory.identified(try ProcFS.identity(of: pid)))
        let seen = try Live.tracer.perform { () -> (held: [ThreadID], strangerTracer: ThreadID?, otherState: Character) in
            let traced = try TracedProcess.stopAllThreads(pid: pid, deadline: Monotonic.now.adding(microseconds: 2_000_000),
                                                          directory: directory, alsoListed: [stranger])
            defer { traced.release() }
            // Looked at while the hold lasts: the stranger already runs free.
            let status = try ProcFS.status(of: otherPid, thread: stranger)
            return (traced.stoppedThreadIDs.sorted(), status.tracer, status.state)
        }
        #expect(seen.held == own.sorted(), "held \(seen.held), the process's own threads \(own)")
        #expect(seen.strangerTracer == nil, "the other process's thread was still traced during the hold")
        #expect(seen.otherState != "t" && seen.otherState != "T")
        for victim in [held, other] {
            let status = try ProcFS.status(of: ProcessID(victim.pid))
            #expect(status.tracer == nil && status.state != "t" && status.state != "T")
        }
        #expect(try Live.behaviour(other) == Live.original)
        #expect(try Live.behaviour(held) == Live.original)
    }
}
