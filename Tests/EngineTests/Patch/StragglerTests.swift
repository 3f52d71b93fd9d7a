import Foundation
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

extension LivePatchTests {
    /// A thread in an uninterruptible wait (a vfork(2) parent until its child ends) takes no stop
    /// within a hold's deadline nor its release's grace; once its wait ends it stops for the
    /// tracer that seized it. The tracer thread lets it go then: it is never left stopped or traced.
    @Test func release_whenAThreadCannotStopBeforeTheGraceEnds_letsItGoOnceItStops_neverLeavingItStoppedOrTraced() throws {
        let path = try Live.builder.build("vfork_blocker.c", flags: ["-O1", "-pthread"])
        // The child sleeps 4 s: longer than the hold's deadline and the release's grace (2 s) together.
        let blocker = try RunningProcess(path, ["4"])
        defer { blocker.stop() }
        let line = try blocker.waitForLine(timeout: 10) { $0.hasPrefix("blocker ") }
        let tid = try #require(Int32(line.dropFirst("blocker ".count)))
        let pid = ProcessID(blocker.pid)
        var state = try ProcFS.status(of: pid, thread: ThreadID(tid)).state
        for _ in 0..<200 where state != "D" {
            usleep(10_000)
            state = try ProcFS.status(of: pid, thread: ThreadID(tid)).state
        }
        #expect(state == "D", "the thread waits for its vfork child")

        let outcome = try Live.tracer.perform { () -> String in
            do {
                let traced = try TracedProcess.stopAllThreads(pid: pid, deadline: Monotonic.now.adding(microseconds: 200_000))
                traced.release()
                return "held"
            } catch {
                return "\(error)"
            }
        }
        #expect(outcome != "held", "the thread in its vfork wait cannot stop in time")
        // The release gave up waiting while the child still slept: the thread stops when the
        // child ends, and runs on at once.
        #expect(try blocker.waitForLine(timeout: 10) { $0 == "vfork done" } == "vfork done")
        let after = try ProcFS.status(of: pid, thread: ThreadID(tid))
        #expect(after.tracer == nil, "no longer traced")
        #expect(after.state != "t" && after.state != "T", "not stopped: \(after.state)")
    }

    /// A straggler that stops while its tracer thread releases another process: the release must
    /// leave its stop to be let go, not take it (it would then stay stopped for good).
    @Test func release_ofAnotherProcess_whileAStragglerHasStopped_leavesItsStopToBeLetGo() throws {
        let path = try Live.builder.build("vfork_blocker.c", flags: ["-O1", "-pthread"])
        let blocker = try RunningProcess(path, ["4"])
        defer { blocker.stop() }
        let line = try blocker.waitForLine(timeout: 10) { $0.hasPrefix("blocker ") }
        let tid = ThreadID(try #require(Int32(line.dropFirst("blocker ".count))))
        let pid = ProcessID(blocker.pid)
        for _ in 0..<200 where try ProcFS.status(of: pid, thread: tid).state != "D" { usleep(10_000) }
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }

        let stoppedMeanwhile = try Live.tracer.perform { () -> Bool in
            // The blocker's thread becomes a straggler of this tracer thread.
            if let traced = try? TracedProcess.stopAllThreads(pid: pid, deadline: Monotonic.now.adding(microseconds: 200_000)) {
                traced.release()
            }
            // Another process held now, and released only once the straggler has stopped.
            guard let other = try? TracedProcess.stopAllThreads(pid: ProcessID(victim.pid), deadline: Monotonic.now.adding(microseconds: 2_000_000))
            else { return false }
            var state = (try? ProcFS.status(of: pid, thread: tid).state) ?? "?"
            for _ in 0..<600 where state != "t" {
                usleep(10_000)
                state = (try? ProcFS.status(of: pid, thread: tid).state) ?? "?"
            }
            other.release()
            return state == "t"
        }
        #expect(stoppedMeanwhile, "the straggler stopped while the other process was held")
        #expect(try blocker.waitForLine(timeout: 10) { $0 == "vfork done" } == "vfork done")
        let after = try ProcFS.status(of: pid, thread: tid)
        #expect(after.tracer == nil, "no longer traced")
        #expect(after.state != "t" && after.state != "T", "not stopped: \(after.state)")
        #expect(victim.isAlive)
    }
}
