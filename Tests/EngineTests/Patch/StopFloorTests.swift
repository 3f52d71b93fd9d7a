import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

/// The floor of a pause (`Patcher.stopFloor`) and the stop window's timed steps
/// (`PatchOptions.timesStopWindow`): a floor holds every thread and lets the process go exactly as a
/// patch does, and the steps of a timed window add up to its pause.
extension LivePatchTests {
    /// Whether `pid` runs on, neither stopped nor traced.
    private static func runsFree(_ pid: Int32) -> Bool {
        guard let status = try? ProcFS.status(of: ProcessID(pid)) else { return false }
        return status.tracer == nil && status.state != "T" && status.state != "t" && status.state != "Z"
    }

    @Test func stopFloor_onABusyVictim_holdsEveryThreadThenLeavesItRunningUntraced() throws {
        let victim = try Live.startVictim(["--threads", "4"])
        defer { victim.stop() }
        let identity = try ProcFS.identity(of: ProcessID(victim.pid))
        let patcher = Patcher()
        for _ in 0..<20 {
            let times = try Live.tracer.perform { () -> StopWindowTimes in try patcher.stopFloor(of: identity) }
            // The main thread and four workers.
            #expect(times.threads == 5)
            #expect(times.seized <= times.stopped && times.stopped <= times.released, "\(times)")
            #expect(times.checked == times.stopped && times.written == times.stopped, "nothing is checked or written: \(times)")
            #expect(times.released > 0)
        }
        // Not asked to time its windows: it keeps nothing.
        #expect(try Live.tracer.perform { patcher.lastStopWindow } == nil)
        #expect(Self.runsFree(victim.pid))
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func stopFloor_duringASignalStorm_deliversTheHeldSignals() throws {
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let identity = try ProcFS.identity(of: ProcessID(victim.pid))
        let patcher = Patcher()
        let storming = ManagedAtomicFlag()
        let stormer = Thread {
            while !storming.isSet { kill(victim.pid, SIGUSR1); usleep(50) }
        }
        stormer.start()
        defer { storming.set() }
        // At least 200 floors and a second of storm: on a loaded machine the stormer may get little CPU.
        let until = Date().addingTimeInterval(1)
        var floors = 0
        while floors < 200 || Date() < until {
            _ = try Live.tracer.perform { () -> StopWindowTimes in try patcher.stopFloor(of: identity) }
            floors += 1
        }
        storming.set()
        let line = try victim.freshLine()
        let signals = Int(line.split(separator: "signals=").last ?? "0") ?? 0
        #expect(signals > 100, "\(line)")
        #expect(Self.runsFree(victim.pid))
    }

    @Test func stopFloor_ofPIDOneOrItselfOrAGoneProcess_isRefusedAndStopsNothing() throws {
        let patcher = Patcher()
        for pid in [ProcessID(1), ProcessID(getpid())] {
            let identity = try ProcFS.identity(of: pid)
            let refusal = try Live.tracer.perform { () -> StopFloorRefusal? in
                do throws(StopFloorRefusal) { _ = try patcher.stopFloor(of: identity) } catch { return error }
                return nil
            }
            guard case .unpatchable(.protectedProcess) = refusal?.outcome else {
                Issue.record("pid \(pid): expected a protected process, got \(String(describing: refusal?.outcome))")
                continue
            }
        }
        let victim = try Live.startVictim(["--threads", "1"])
        let identity = try ProcFS.identity(of: ProcessID(victim.pid))
        victim.stop()
        let gone = try Live.tracer.perform { () -> StopFloorRefusal? in
            do throws(StopFloorRefusal) { _ = try patcher.stopFloor(of: identity) } catch { return error }
            return nil
        }
        #expect(gone?.outcome == .unpatchable(.processGone))
    }

    @Test func reconcile_withTimedStopWindow_timesEveryStepInOrderUpToItsPause() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "4"])
        defer { victim.stop() }
        var options = PatchOptions()
        options.timesStopWindow = true
        let patcher = Patcher(options: options)
        for round in 0..<10 {
            let desired = round % 2 == 0 ? target : nil
            let report = try Live.reconcile(victim, desired: desired, known: [target], patcher: patcher)
            #expect(report.outcome == (desired == nil ? .reverted : .applied), "\(report.outcome)")
            guard let times = try Live.tracer.perform({ patcher.lastStopWindow }), let pause = report.pauseMicroseconds else {
                Issue.record("round \(round): no timed stop window (pause \(String(describing: report.pauseMicroseconds)))")
                continue
            }
            let steps = [times.seized, times.stopped, times.checked, times.verified, times.evacuated, times.written, times.released]
            #expect(steps == steps.sorted(), "steps out of order: \(times)")
            #expect(times.threads == report.threadCount)
            #expect(times.restops == report.restops)
            // The release is the pause's end; both are read within microseconds of each other.
            #expect(times.released <= pause && pause - times.released < 1_000, "\(times) against a pause of \(pause) µs")
        }
        // A reconcile that writes nothing stops nothing, and keeps no window.
        let none = try Live.reconcile(victim, desired: nil, known: [target], patcher: patcher)
        #expect(none.outcome == .notApplied)
        #expect(try Live.tracer.perform { patcher.lastStopWindow } == nil)
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func stopAllThreads_readingRegisters_holdsEachThreadsRegistersAsItStopped() throws {
        let victim = try Live.startVictim(["--threads", "4"])
        defer { victim.stop() }
        let pid = ProcessID(victim.pid)
        let compared = try Live.tracer.perform { () -> [(ThreadID, Bool)] in
            let traced = try TracedProcess.stopAllThreads(pid: pid, deadline: Monotonic.now.adding(microseconds: 2_000_000),
                                                          readingRegisters: true)
            defer { traced.release() }
            return traced.stoppedThreadIDs.map { tid in
                // Nothing ran since the stop: what was kept is what the thread holds now.
                (tid, traced.registers(of: tid) != nil && traced.registers(of: tid) == (try? Ptrace.registers(tid)))
            }
        }
        #expect(compared.count == 5)
        for (tid, same) in compared { #expect(same, "thread \(tid)") }
        #expect(Self.runsFree(victim.pid))
    }

    /// The threads one hold of `pid` (through `directory`) stopped, in increasing order; let go at once.
    private static func threadsHeld(_ pid: ProcessID, through directory: ProcessDirectory) throws -> [ThreadID] {
        try Live.tracer.perform { () -> [ThreadID] in
            let traced = try TracedProcess.stopAllThreads(pid: pid, deadline: Monotonic.now.adding(microseconds: 2_000_000),
                                                          directory: directory)
            defer { traced.release() }
            return traced.stoppedThreadIDs.sorted()
        }
    }

    @Test func stopAllThreads_ofAProcessWithOneThreadAtItsIdentification_holdsIt() throws {
        let victim = try Live.startVictim(["--threads", "0"])
        defer { victim.stop() }
        let pid = ProcessID(victim.pid)
        let directory = try #require(ProcessDirectory.identified(try ProcFS.identity(of: pid)))
        #expect(directory.threadsWhenIdentified == 1)
        let held = try Self.threadsHeld(pid, through: directory)
        #expect(held == [pid.mainThread])
        #expect(Self.runsFree(victim.pid))
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func stopAllThreads_whenThreadsWereBornAfterASingleThreadedIdentification_holdsThemAll() throws {
        let victim = try Live.startVictim(["--threads", "3"])
        defer { victim.stop() }
        let pid = ProcessID(victim.pid)
        let directory = try #require(ProcessDirectory.identified(try ProcFS.identity(of: pid)))
        #expect(directory.threadsWhenIdentified == 4)
        // As if its three workers had started between its identification and the hold: the
        // leader is seized first, and the listing after it must still find every other thread.
        directory.threadsWhenIdentified = 1
        let held = try Self.threadsHeld(pid, through: directory)
        #expect(held.count == 4)
        #expect(held == (try ProcFS.threadIDs(of: pid)).sorted())
        #expect(Self.runsFree(victim.pid))
        #expect(try Live.behaviour(victim) == Live.original)
    }
}
