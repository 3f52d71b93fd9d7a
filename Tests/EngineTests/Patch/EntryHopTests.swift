import Architecture
import Artifact
import Foundation
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

extension LivePatchTests {
    /// A 3-byte function is redirected through the 5 no-ops before it and put back on revert.
    @Test func apply_whenFunctionIsShorterThanTheJump_hopsThroughThePaddingAndRevertsIt() throws {
        let victimPath = try Live.builder.build("short_function.c", flags: ["-O1"])
        let patchPath = try Live.builder.patchObject("patch_short_function.c")
        let plan = try RedirectionPlanner.plan(target: ELFFile.load(path: victimPath), debugFile: nil,
                                               patchObject: PatchObject(path: patchPath),
                                               replacements: [(symbol: "answer", replacement: "answer_fixed")], references: [])
        let redirection = try #require(plan.redirections.first)
        #expect(redirection.size < 5 && redirection.padding == 5)
        let target = HotpatchTarget(buildID: plan.buildID, pathHint: victimPath, patchObjectPath: patchPath,
                                    redirections: plan.redirections, references: plan.references)
        let victim = try RunningProcess(victimPath, [])
        defer { victim.stop() }
        _ = try victim.waitForLine(timeout: 10) { $0 == "answer=41" }
        let match = try Live.match(victim.pid, plan.buildID)
        let entry = match.object.loadBias + redirection.offset
        let memory = try ProcessMemory(pid: ProcessID(victim.pid))
        let before = try memory.read(at: entry - 5, count: 7)

        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied)
        _ = try victim.waitForLine(timeout: 5) { $0 == "answer=42" }
        let hop = try memory.read(at: entry - 5, count: 7)
        #expect(hop[0] == 0xE9 && Array(hop[5...]) == [0xEB, 0xF9])
        // Applying again finds it in place.
        #expect(try Live.reconcile(victim, desired: target, known: [target]).outcome == .alreadyApplied)

        let reverted = try Live.reconcile(victim, desired: nil, known: [target])
        #expect(reverted.outcome == .reverted)
        _ = try victim.waitForLine(timeout: 5) { $0 == "answer=41" }
        #expect(try memory.read(at: entry - 5, count: 7) == before)
        #expect(victim.isAlive)
    }
}
