import Artifact
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing

extension LivePatchTests {
    @Test func find_whenExecutableWasDeletedOrReplacedOnDisk_stillMatchesAndPatchesThroughMapFiles() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let scratch = try TemporaryDirectory(prefix: "hotpatch-replaced"), folder = scratch.path
        defer { scratch.remove() }
        let deletedPath = folder + "/victim-deleted", replacedPath = folder + "/victim-replaced"
        try FileManager.default.copyItem(atPath: Live.builder.victim(), toPath: deletedPath)
        try FileManager.default.copyItem(atPath: Live.builder.victim(), toPath: replacedPath)
        let deleted = try RunningProcess(deletedPath, ["--threads", "2", "--interval-ms", "20"])
        let replaced = try RunningProcess(replacedPath, ["--threads", "2", "--interval-ms", "20"])
        defer { deleted.stop(); replaced.stop() }
        for process in [deleted, replaced] { _ = try process.waitForLine { $0.hasPrefix("ready") } }
        try FileManager.default.removeItem(atPath: deletedPath)
        // An upgrade: a different file renamed over the old path.
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: replacedPath + ".new")
        _ = rename(replacedPath + ".new", replacedPath)

        let matches = TargetFinder(cache: ObjectCache()).find(buildIDs: [target.buildID],
                                                              among: [ProcessID(deleted.pid), ProcessID(replaced.pid)])
        #expect(matches.count == 2)
        #expect(matches.allSatisfy { $0.object.isDeleted })
        for process in [deleted, replaced] {
            #expect(try Live.reconcile(process, desired: target, known: [target]).outcome == .applied)
            #expect(try Live.behaviour(process) == Live.level1)
            // Revert needs the original bytes, read from the very file mapped (not the new one on disk).
            #expect(try Live.reconcile(process, desired: nil, known: [target]).outcome == .reverted)
            #expect(try Live.behaviour(process) == Live.original)
        }
    }

    @Test func strictMode_whenAStackHoldsAReturnAddressIntoAReplacedFunction_backsOff() throws {
        // `parked` (the parked thread's body) has a frame on that thread's stack: its return address
        // into `parked` is what a conservative scan must find.
        let victimPath = try Live.builder.victim()
        let patchPath = try Live.builder.patchObject("patch_level1.c")
        let plan = try RedirectionPlanner.plan(target: ELFFile.load(path: victimPath), debugFile: nil,
                                               patchObject: PatchObject(path: patchPath),
                                               replacements: [(symbol: "parked", replacement: "parse_length_fixed")], references: [])
        let target = HotpatchTarget(buildID: plan.buildID, pathHint: victimPath, patchObjectPath: patchPath,
                                    redirections: plan.redirections)
        let victim = try Live.startVictim(["--threads", "1", "--parked"])
        defer { victim.stop() }
        _ = try victim.line { $0.hasPrefix("parked") }
        var strictOptions = PatchOptions()
        strictOptions.strictStackCheck = true
        let strict = try Live.reconcile(victim, desired: target, known: [target], patcher: Patcher(options: strictOptions), retries: 0)
        guard case let .busy(reason) = strict.outcome else {
            Issue.record("strict mode: \(strict.outcome)")
            return
        }
        #expect(reason.contains("parked"), "\(reason)")
        let relaxed = try Live.reconcile(victim, desired: target, known: [target])
        #expect(relaxed.outcome == .applied, "\(relaxed.outcome)")
        #expect(try Live.reconcile(victim, desired: nil, known: [target]).outcome == .reverted)
        #expect(victim.isAlive)
    }
}
