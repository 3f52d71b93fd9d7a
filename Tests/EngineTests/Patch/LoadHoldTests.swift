import Engine
import Foundation
import HotpatchFixtures
import LinuxSystem
import Testing

/// The load holds every thread of the process while its calls are checked and injected, and its
/// pause is reported apart from the redirect's.
extension LivePatchTests {
    @Test func apply_thatMapsThePatchObject_reportsTheLoadPauseApartFromTheRedirectPause() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        #expect(applied.injectedSystemCalls > 0)
        let load = try #require(applied.loadPauseMicroseconds, "a load that injected calls reports its pause")
        #expect(load > 0 && load < applied.totalMicroseconds)
        #expect((applied.pauseMicroseconds ?? 0) > 0, "the redirect's own stop is still reported")

        let reverted = try Live.reconcile(victim, desired: nil, known: [target])
        #expect(reverted.outcome == .reverted)
        #expect(reverted.loadPauseMicroseconds == nil, "a revert loads nothing")
        let again = try Live.reconcile(victim, desired: target, known: [target])
        #expect(again.outcome == .applied)
        #expect(again.injectedSystemCalls == 0 && again.loadPauseMicroseconds == nil, "the image is reused: no load, no load pause")
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func apply_whenOnlyTheMainThreadSandboxedItself_patchesThroughAnotherThread() throws {
        // The main thread installs a kill-on-mmap filter without TSYNC once its workers run: the
        // load's calls, which would kill the process from the main thread, run in another one.
        let hotpatch = try VictimHotpatches(builder: Live.builder, victimPath: Live.builder.lateSandboxVictim()).level1
        let target = hotpatch.targets[0]
        let sandbox = LateSandbox(filter: .killMmap, afterThreads: 4, everyThread: false, mainThreadOnly: true)
        let victim = try RunningProcess(try Live.builder.lateSandboxVictim(), ["--threads", "2", "--interval-ms", "20"],
                                        environment: sandbox.environment(library: try Live.builder.lateSandbox()))
        defer { victim.stop() }
        _ = try victim.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        let pid = ProcessID(victim.pid)
        let deadline = Date().addingTimeInterval(5)
        while (try? ProcFS.status(of: pid, thread: ThreadID(victim.pid)).seccompMode) != 2, Date() < deadline { usleep(1_000) }
        let modes = try ProcFS.threadIDs(of: pid).map { try ProcFS.status(of: pid, thread: $0).seccompMode }
        try #require(modes.first == 2 && modes.dropFirst().allSatisfy { $0 == 0 }, "only the main thread sandboxed itself: \(modes)")

        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(victim.isAlive, "wait status \(String(describing: victim.waitStatus))")
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func apply_whenOneThreadSandboxedOnlyItself_patchesThroughAThreadItsFilterDoesNotCover() throws {
        // The sandboxing thread installs a kill-on-mmap filter without TSYNC, then sleeps in
        // pause(): asleep in a system call, it is a candidate for the injected calls, but its own
        // filter would kill the process on them; the leader has none.
        let hotpatch = try VictimHotpatches(builder: Live.builder, victimPath: Live.builder.lateSandboxVictim()).level1
        let target = hotpatch.targets[0]
        let sandbox = LateSandbox(filter: .killMmap, everyThread: false)
        for round in 0..<3 {
            let victim = try RunningProcess(try Live.builder.lateSandboxVictim(), ["--threads", "2", "--interval-ms", "20"],
                                            environment: sandbox.environment(library: try Live.builder.lateSandbox()))
            defer { victim.stop() }
            _ = try victim.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
            let pid = ProcessID(victim.pid)
            var sandboxed: [ThreadID] = []
            let deadline = Date().addingTimeInterval(5)
            while sandboxed.isEmpty, Date() < deadline {
                sandboxed = try ProcFS.threadIDs(of: pid).filter { (try? ProcFS.status(of: pid, thread: $0).seccompMode) == 2 }
                if sandboxed.isEmpty { usleep(1_000) }
            }
            #expect(sandboxed.count == 1, "round \(round): one thread sandboxed itself, not \(sandboxed)")
            #expect(try ProcFS.status(of: pid, thread: ThreadID(victim.pid)).seccompMode == 0, "round \(round): the leader has no filter")

            let report = try Live.reconcile(victim, desired: target, known: [target])
            #expect(report.outcome == .applied, "round \(round): \(report.outcome)")
            #expect(victim.isAlive, "round \(round): wait status \(String(describing: victim.waitStatus))")
            #expect(try Live.behaviour(victim) == Live.level1, "round \(round)")
        }
    }
}
