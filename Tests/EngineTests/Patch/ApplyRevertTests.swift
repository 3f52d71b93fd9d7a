import Artifact
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing

extension LivePatchTests {
    @Test func apply_onEightBusyThreads_changesBehaviourLiveStaysChangedAndRevertRestoresIt() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "8"])
        defer { victim.stop() }
        #expect(try Live.behaviour(victim) == Live.original)

        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        #expect(applied.threadCount == 9)
        #expect(applied.injectedSystemCalls > 0)
        #expect((applied.pauseMicroseconds ?? 0) > 0)

        // Stays changed for ten seconds while eight threads hammer the function.
        #expect(try Live.behaviour(victim) == Live.level1)
        let until = Date().addingTimeInterval(10)
        var lines = 0
        while Date() < until {
            let line = try victim.nextLine()
            #expect(line.hasPrefix(Live.level1), "\(line)")
            lines += 1
        }
        #expect(lines > 100)

        let reverted = try Live.reconcile(victim, desired: nil, known: [target])
        #expect(reverted.outcome == .reverted, "\(reverted.outcome)")
        #expect(try Live.behaviour(victim) == Live.original)
        #expect(victim.isAlive)
    }

    @Test func apply_whenAlreadyApplied_isNoOpAndAFreshPatcherReadsTheTruthFromTheProcess() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        #expect(try Live.reconcile(victim, desired: target, known: [target]).outcome == .applied)
        // A new patcher with an empty cache stands for an agent restarted after a crash.
        let restarted = Patcher(cache: ObjectCache())
        let again = try Live.reconcile(victim, desired: target, known: [target], patcher: restarted)
        #expect(again.outcome == .alreadyApplied)
        #expect(again.pauseMicroseconds == nil, "a no-op must not stop the process")
        #expect(try Live.reconcile(victim, desired: nil, known: [target], patcher: restarted).outcome == .reverted)
        #expect(try Live.reconcile(victim, desired: nil, known: [target], patcher: restarted).outcome == .notApplied)
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func firstApplyRevertAndFloor_leaveTheTracerThreadAtItsOwnSchedulingPolicy() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let patcher = Patcher()
        func policy() throws -> Int32 { try Live.tracer.perform { sched_getscheduler(0) } }
        let own = try policy()
        #expect(own != SCHED_FIFO)
        // A first apply raises a span from the load's hold to the redirect, each raised too.
        let applied = try Live.reconcile(victim, desired: target, known: [target], patcher: patcher)
        #expect(applied.outcome == .applied && applied.injectedSystemCalls > 0)
        #expect(try policy() == own)
        #expect(try Live.reconcile(victim, desired: nil, known: [target], patcher: patcher).outcome == .reverted)
        #expect(try policy() == own)
        let identity = try ProcFS.identity(of: ProcessID(victim.pid))
        _ = try Live.tracer.perform { try? patcher.stopFloor(of: identity) }
        #expect(try policy() == own)
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func reapply_afterRevert_reusesTheSealedImageWithoutInjecting() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        #expect(try Live.reconcile(victim, desired: target, known: [target]).outcome == .applied)
        #expect(try Live.reconcile(victim, desired: nil, known: [target]).outcome == .reverted)
        let second = try Live.reconcile(victim, desired: target, known: [target])
        #expect(second.outcome == .applied)
        #expect(second.injectedSystemCalls == 0)
        #expect(Live.mapsLines(victim.pid, containing: "patch_level1").count >= 2)
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func replace_level1ByLevel2_inOneStop_dropsTheFunctionLevel2NoLongerPatches() throws {
        let hotpatches = try Live.victimHotpatches()
        let first = hotpatches.level1.targets[0], second = hotpatches.level2.targets[0]
        let victim = try Live.startVictim(["--threads", "8"])
        defer { victim.stop() }
        #expect(try Live.reconcile(victim, desired: first, known: [first, second]).outcome == .applied)
        #expect(try Live.behaviour(victim) == Live.level1)

        // Level 2 calls snprintf/atoi from libc and the victim's static helper_scale (via refs).
        let replaced = try Live.reconcile(victim, desired: second, known: [first, second])
        #expect(replaced.outcome == .applied, "\(replaced.outcome)")
        #expect(try Live.behaviour(victim) == Live.level2)

        let reverted = try Live.reconcile(victim, desired: nil, known: [first, second])
        #expect(reverted.outcome == .reverted)
        #expect(try Live.behaviour(victim) == Live.original)
        #expect(victim.isAlive)
    }

    @Test func apply_toStrippedBinary_usesOffsetsFromTheUnstrippedBuild() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let stripped = try ELFFile.load(path: Live.builder.strippedVictim())
        #expect(try stripped.symbols().isEmpty)
        #expect(stripped.buildID == target.buildID)
        let victim = try Live.startVictim(["--threads", "4"], stripped: true)
        defer { victim.stop() }
        #expect(try Live.reconcile(victim, desired: target, known: [target]).outcome == .applied)
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func cycles_thousandApplyRevertOnThirtyTwoThreads_neverCrashOrHang() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "32"])
        defer { victim.stop() }
        let patcher = Patcher()
        var pauses: [UInt64] = []
        var evacuations = 0
        for cycle in 0..<1000 {
            let applied = try Live.reconcile(victim, desired: target, known: [target], patcher: patcher)
            let reverted = try Live.reconcile(victim, desired: nil, known: [target], patcher: patcher)
            guard applied.outcome == .applied, reverted.outcome == .reverted else {
                Issue.record("cycle \(cycle): \(applied.outcome) / \(reverted.outcome)")
                break
            }
            pauses.append(contentsOf: [applied.pauseMicroseconds ?? 0, reverted.pauseMicroseconds ?? 0])
            evacuations += applied.evacuatedThreads + reverted.evacuatedThreads
        }
        #expect(victim.isAlive, "victim died: wait status \(victim.waitStatus ?? -1)")
        #expect(pauses.count == 2000)
        #expect(try Live.behaviour(victim) == Live.original)
        print("32 threads, 1000 cycles: median pause \(pauses.sorted()[pauses.count / 2]) µs, evacuations \(evacuations)")
    }

    @Test func firstApply_toAQuietProcess_holdsItOnceForTheLoadAndTheRedirect_andReportsWhereTheImageLies() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try RunningProcess(try Live.builder.victim(), ["--interval-ms", "20", "--threads", "1"])
        defer { victim.stop() }
        _ = try victim.waitForLine(timeout: 10) { $0.hasPrefix("ready") }

        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        #expect(applied.holds == 1 + applied.restops, "one hold for the load and the redirect: \(applied.holds)")
        #expect(applied.loadPauseMicroseconds != nil && applied.pauseMicroseconds != nil, "both parts of the hold are reported")
        // Every mapping of the image (its segments; the marker page is anonymous) lies in the range reported.
        let image = try #require(applied.objects[0].image)
        let segments = Live.mapsLines(victim.pid, containing: "patch_level1").compactMap { line -> Range<UInt64>? in
            let bounds = line.split(separator: " ")[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
            return bounds.count == 2 ? bounds[0]..<bounds[1] : nil
        }
        #expect(!segments.isEmpty)
        for segment in segments {
            #expect(image.contains(segment.lowerBound) && segment.upperBound <= image.upperBound, "\(segment) outside \(image)")
        }
        #expect(segments.map(\.lowerBound).min()! - image.lowerBound == 4096, "the marker page comes first")
        #expect(try Live.behaviour(victim) == Live.level1)

        // A revert loads nothing: one stop, and no image in force.
        let reverted = try Live.reconcile(victim, desired: nil, known: [target])
        #expect(reverted.outcome == .reverted)
        #expect(reverted.holds == 1 + reverted.restops && reverted.loadPauseMicroseconds == nil)
        #expect(reverted.objects[0].image == nil)
        #expect(try Live.behaviour(victim) == Live.original)
    }
}
