import Architecture
import Artifact
import Foundation
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

/// A near-only function (a branch of its own lands in the bytes only the far jump covers, so
/// `hotpatch-pack` marks it `near_only`) never gets the far jump: with no room near the target for
/// the patch image, the process is refused and left as it was.
extension LivePatchTests {
    /// `count_up` of crowded_near_only.c, planned as `hotpatch-pack` plans it and marked near-only
    /// as it publishes it (PackPublishChecksTests shows the marking for this shape).
    private static func nearOnlyTarget() throws -> (target: HotpatchTarget, program: String) {
        let program = try Live.builder.build("crowded_near_only.c", flags: ["-O1"])
        let patch = try Live.builder.patchObject("patch_crowded_near_only.c")
        let plan = try RedirectionPlanner.plan(target: ELFFile.load(path: program), debugFile: nil,
                                               patchObject: PatchObject(path: patch),
                                               replacements: [(symbol: "count_up", replacement: "count_up_fixed")], references: [])
        var redirections = plan.redirections
        redirections[0].nearOnly = true
        return (HotpatchTarget(buildID: plan.buildID, pathHint: program, patchObjectPath: patch,
                               redirections: redirections, references: plan.references), program)
    }

    @Test func apply_whenNearOnlyFunctionHasNoRoomNearIt_isRefusedNamingItAndChangesNothing() throws {
        let (target, program) = try Self.nearOnlyTarget()
        let redirection = target.redirections[0]
        let victim = try RunningProcess(program, ["--crowd"])
        defer { victim.stop() }
        let crowded = try victim.waitForLine(timeout: 10) { $0.hasPrefix("crowded ") }
        _ = try victim.waitForLine { $0 == "ready" }
        let match = try Live.match(victim.pid, target.buildID)
        // The fixture did leave no room: the loader finds no near address for even a small image.
        let mappings = try ProcFS.maps(of: ProcessID(victim.pid))
        #expect(PatchLoader.nearAddress(for: 4 * HostArchitecture.pageSize, near: match.object, mappings: mappings) == nil, "\(crowded)")
        let entry = match.object.loadBias + redirection.offset
        let memory = try ProcessMemory(pid: ProcessID(victim.pid))
        let before = try memory.read(at: entry, count: Int(redirection.size))

        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .unpatchable(.noRoomForNearJump(symbol: "count_up", address: entry, need: .branchTargetUnderFarJump)))
        #expect("\(report.outcome)".contains("count_up"))
        #expect(report.objects.first?.refusal == report.outcome)
        #expect(report.pauseMicroseconds == nil && report.loadPauseMicroseconds == nil && report.injectedSystemCalls == 0)
        #expect(try memory.read(at: entry, count: Int(redirection.size)) == before)
        #expect(Live.mapsLines(victim.pid, containing: PatchLoader.name(of: target.patchObjectPath)).isEmpty)
        #expect(victim.isAlive)
        _ = try victim.freshLine()
        #expect(try victim.nextLine() == "count=12")
    }

    @Test func apply_whenNearOnlyFunctionHasRoomNearIt_takesTheNearJump() throws {
        let (target, program) = try Self.nearOnlyTarget()
        let victim = try RunningProcess(program, [])
        defer { victim.stop() }
        _ = try victim.waitForLine(timeout: 10) { $0 == "ready" }
        let match = try Live.match(victim.pid, target.buildID)
        let entry = match.object.loadBias + target.redirections[0].offset

        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        _ = try victim.waitForLine { $0 == "count=1012" }
        let jump = try ProcessMemory(pid: ProcessID(victim.pid)).read(at: entry, count: HostArchitecture.farJumpLength)
        #expect(HostArchitecture.decodeJump(jump, at: entry)?.length == HostArchitecture.nearJumpLength)
        #expect(try Live.reconcile(victim, desired: nil, known: [target]).outcome == .reverted)
        _ = try victim.waitForLine { $0 == "count=12" }
        #expect(victim.isAlive)
    }
}
