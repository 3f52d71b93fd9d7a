import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Architecture
import Testing
@testable import Engine

/// The agent killed while it holds a thread. Its death is simulated faithfully: the ptrace work
/// runs on a tracer thread of its own that then exits without detaching, and the kernel detaches
/// that thread's tracees exactly as it does when a tracer process dies.
extension LivePatchTests {
    /// Runs `body` on a fresh tracer thread, which then exits with whatever it still holds.
    private static func onDoomedTracer(_ body: @escaping () throws -> Void) throws {
        let tracer = TracerThread(name: "doomed-tracer")
        try tracer.perform(body)
        tracer.shutdown()
        // The thread exits right after its last job; the kernel detaches its tracees then.
        Thread.sleep(forTimeInterval: 0.2)
    }

    /// Seizes thread `tid` of `pid` (or, `holdingEveryThread`, every thread, as a load does), maps an
    /// r-x page and writes the stub there with one call on an existing `syscall`, then runs `getpid`
    /// through the stub, leaving the thread holding our registers; the tracer never restores it.
    private static func injectThroughStubAndAbandon(pid: ProcessID, tid: ThreadID, holdingEveryThread: Bool = false) throws {
        let deadline = Monotonic.now.adding(microseconds: 2_000_000)
        let traced = holdingEveryThread ? try TracedProcess.stopAllThreads(pid: pid, deadline: deadline)
            : try TracedProcess.stopOneThread(tid, of: pid, deadline: deadline)
        let memory = try ProcessMemory(pid: pid)
        let mappings = try ProcFS.maps(of: pid)
        let found = PatchLoader.syscallInstruction(pid: pid, mappings: mappings, memory: memory, cache: ObjectCache())
        let instruction = try #require(found)
        let injector = try SystemCallInjector(traced: traced, tid: tid, instruction: instruction)
        let page = try injector.call(HostArchitecture.systemCalls.mmap, [0, 4096, 5, 0x22, UInt64.max, 0], deadline: deadline)
        #expect(page > 0)
        let stub = UInt64(page) + PatchImageMarker.stubOffset
        try memory.write(injector.stub, at: stub)
        injector.useStub(at: stub)
        #expect(try injector.call(getpid, [], deadline: deadline) == Int64(pid.rawValue))
        #expect(try Ptrace.registers(tid).instructionPointer == stub + UInt64(HostArchitecture.systemCallInstruction.count))
        _ = traced  // never released: the tracer's death detaches it
    }

    /// Seizes thread `tid` of `pid` and runs the first call (an r-x page) on an existing `syscall`,
    /// leaving the thread parked at that call's exit stop; the tracer never restores it.
    private static func firstCallAndAbandon(pid: ProcessID, tid: ThreadID, inPlace: Bool = false) throws {
        let memory = try ProcessMemory(pid: pid)
        let mappings = try ProcFS.maps(of: pid)
        let found = PatchLoader.syscallInstruction(pid: pid, mappings: mappings, memory: memory, cache: ObjectCache())
        let instruction = try #require(found)
        var attempt = 0
        var deadline = Monotonic.now.adding(microseconds: 2_000_000)
        var traced = try TracedProcess.stopOneThread(tid, of: pid, deadline: deadline)
        var injector = try SystemCallInjector(traced: traced, tid: tid, instruction: instruction)
        // The leader sleeps most of the time but also prints: stop it again until it is caught asleep.
        while inPlace, injector.restartedSystemCall == nil, attempt < 50 {
            attempt += 1
            try injector.restore()
            traced.release()
            usleep(2_000)
            deadline = Monotonic.now.adding(microseconds: 2_000_000)
            traced = try TracedProcess.stopOneThread(tid, of: pid, deadline: deadline)
            injector = try SystemCallInjector(traced: traced, tid: tid, instruction: instruction)
        }
        if inPlace {
            let own = try #require(injector.restartedSystemCall, "the thread is asleep in a system call")
            #expect(try memory.read(at: own, count: 2) == HostArchitecture.systemCallInstruction)
            injector.runFirstCallInPlaceOfRestartedCall()
        }
        #expect(try injector.call(HostArchitecture.systemCalls.mmap, [0, 4096, 5, 0x22, UInt64.max, 0], deadline: deadline) > 0)
        #expect(traced.isAtSystemCallStop(tid))
        _ = traced
    }

    /// Like `injectThroughStubAndAbandon`, but leaves the thread at the *entry* stop of a `getpid`
    /// on the stub: on the tracer's death the thread runs the call, then the stub.
    private static func enterStubCallAndAbandon(pid: ProcessID, tid: ThreadID) throws {
        let deadline = Monotonic.now.adding(microseconds: 2_000_000)
        let traced = try TracedProcess.stopOneThread(tid, of: pid, deadline: deadline)
        let memory = try ProcessMemory(pid: pid)
        let mappings = try ProcFS.maps(of: pid)
        let found = PatchLoader.syscallInstruction(pid: pid, mappings: mappings, memory: memory, cache: ObjectCache())
        let instruction = try #require(found)
        let injector = try SystemCallInjector(traced: traced, tid: tid, instruction: instruction)
        let page = try injector.call(HostArchitecture.systemCalls.mmap, [0, 4096, 5, 0x22, UInt64.max, 0], deadline: deadline)
        let stub = UInt64(page) + PatchImageMarker.stubOffset
        try memory.write(injector.stub, at: stub)
        injector.useStub(at: stub)
        #expect(try injector.call(getpid, [], deadline: deadline) == Int64(pid.rawValue))
        var registers = try Ptrace.registers(tid)
        registers.prepareSystemCall(number: getpid, arguments: [], at: stub)
        try Ptrace.setRegisters(tid, registers)
        #expect(try traced.runToSystemCallStop(tid, deadline: deadline))
        #expect(try Ptrace.registers(tid).currentSystemCall == getpid)
        _ = traced
    }

    /// getpid(2)'s number on x86_64: a call with a known result and no side effect.
    private static let getpid = 39

    private static func blockedSignals(_ pid: Int32, _ tid: Int32) throws -> String {
        let status = try String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)
        return status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") }.map(String.init) ?? ""
    }

    /// The victim's worker thread, once it runs its own code. A new thread starts with every
    /// signal blocked (pthread_create) and sets its own mask only when it first runs, so a mask read
    /// before that (a loaded machine) is not the one the thread must get back.
    private static func runningWorker(of victim: RunningProcess) throws -> Int32 {
        let worker = try #require(try threadIDs(victim.pid).first { $0 != victim.pid })
        let deadline = Date().addingTimeInterval(5)
        while try calls(victim) <= 0, Date() < deadline {}
        return worker
    }

    private static func threadIDs(_ pid: Int32) throws -> [Int32] {
        try ProcFS.threadIDs(of: ProcessID(pid)).map { Int32($0.rawValue) }
    }

    private static func calls(_ victim: RunningProcess) throws -> Int {
        let line = try victim.freshLine()
        let field = line.split(separator: " ").first { $0.hasPrefix("calls=") } ?? ""
        return Int(field.dropFirst("calls=".count)) ?? -1
    }

    @Test func injection_whenTracerDiesAfterStubCall_sleepingThreadResumesWithItsOwnState() throws {
        // The main thread spends its time in nanosleep: stopped there, it resumes with restart_syscall.
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let before = try Self.blockedSignals(victim.pid, victim.pid)
        for _ in 0..<5 {
            try Self.onDoomedTracer { try Self.injectThroughStubAndAbandon(pid: ProcessID(victim.pid), tid: ThreadID(victim.pid)) }
            #expect(victim.isAlive, "wait status \(String(describing: victim.waitStatus))")
            #expect(try ProcFS.status(of: ProcessID(victim.pid)).tracer == nil)
            #expect(try Self.blockedSignals(victim.pid, victim.pid) == before)
            #expect(try Live.behaviour(victim) == Live.original)
        }
    }

    @Test func injection_whenTracerDiesWhileItHoldsEveryThread_everyThreadCarriesOn() throws {
        // A load holds every thread: on the agent's death the others, in interrupt stops, are let go
        // with the injection thread, which the stub puts back.
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let pid = ProcessID(victim.pid)
        let before = try Self.blockedSignals(victim.pid, victim.pid)
        for round in 0..<5 {
            try Self.onDoomedTracer {
                try Self.injectThroughStubAndAbandon(pid: pid, tid: ThreadID(victim.pid), holdingEveryThread: true)
            }
            #expect(victim.isAlive, "round \(round): wait status \(String(describing: victim.waitStatus))")
            for thread in try ProcFS.threadIDs(of: pid) {
                let status = try ProcFS.status(of: pid, thread: thread)
                #expect(status.tracer == nil && status.state != "t",
                        "round \(round): thread \(thread) is \(status.state), traced by \(String(describing: status.tracer))")
            }
        }
        #expect(try Self.blockedSignals(victim.pid, victim.pid) == before)
        #expect(try Live.behaviour(victim) == Live.original)
        let first = try Self.calls(victim)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try Self.calls(victim) > first, "the workers run again")
    }

    @Test func injection_whenTracerDiesAfterStubCall_runningThreadResumesWithItsOwnState() throws {
        // A worker thread is in user code, mid-computation: every register and flag must come back.
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        let worker = try Self.runningWorker(of: victim)
        let before = try Self.blockedSignals(victim.pid, worker)
        for round in 0..<20 {
            try Self.onDoomedTracer { try Self.injectThroughStubAndAbandon(pid: ProcessID(victim.pid), tid: ThreadID(worker)) }
            #expect(victim.isAlive, "wait status \(String(describing: victim.waitStatus))")
            let after = try Self.blockedSignals(victim.pid, worker)
            let state = (try? String(contentsOfFile: "/proc/\(victim.pid)/task/\(worker)/stat", encoding: .utf8)) ?? ""
            #expect(after == before, "round \(round): \(after) (before: \(before)); stat: \(state.prefix(120))")
        }
        let first = try Self.calls(victim)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try Self.calls(victim) > first, "the worker keeps calling (and checking) its functions")
        #expect(victim.isAlive)
    }

    @Test func injection_whenTracerDiesAfterStubCall_threadBlockedInPauseStaysBlockedAndStillGetsSignals() throws {
        // The parked thread sits in pause() (-ERESTARTNOHAND): it must go back into pause, with its
        // signal mask back so SIGUSR2 still reaches it.
        let victim = try Live.startVictim(["--threads", "1", "--parked"])
        defer { victim.stop() }
        let parkedLine = try victim.line { $0.hasPrefix("parked tid=") }
        let parked = Int32(parkedLine.dropFirst("parked tid=".count))!
        Thread.sleep(forTimeInterval: 0.05)
        let before = try Self.blockedSignals(victim.pid, parked)
        try Self.onDoomedTracer { try Self.injectThroughStubAndAbandon(pid: ProcessID(victim.pid), tid: ThreadID(parked)) }
        #expect(victim.isAlive, "wait status \(String(describing: victim.waitStatus))")
        #expect(try Self.blockedSignals(victim.pid, parked) == before)
        Thread.sleep(forTimeInterval: 0.05)
        #expect(try ProcFS.status(of: ProcessID(parked)).state == "S", "back in pause()")
        try Ptrace.signalThread(process: ProcessID(victim.pid), thread: ThreadID(parked), SIGUSR2)
        _ = try victim.waitForLine { $0 == "unparked" }
        #expect(victim.isAlive)
    }

    @Test func injection_whenTracerDiesRightAfterTheFirstCall_threadResumesWithItsOwnState() throws {
        // The first call runs off the stub; at its exit the thread is parked at its own state.
        try Self.expectSurvivesDoomedTracers(checkingTracer: true) { pid, tid in
            try Self.firstCallAndAbandon(pid: pid, tid: tid)
        }
    }

    @Test func injection_whenTracerDiesRightAfterAFirstCallInPlaceOfASleep_threadSleepsOnWithItsOwnState() throws {
        // The leader sleeps in nanosleep: the first call replaces its restarted call, on its own
        // `syscall`, and the thread is parked at the exit.
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        let before = try Self.blockedSignals(victim.pid, victim.pid)
        for _ in 0..<10 {
            Thread.sleep(forTimeInterval: 0.005)
            try Self.onDoomedTracer {
                try Self.firstCallAndAbandon(pid: ProcessID(victim.pid), tid: ThreadID(victim.pid), inPlace: true)
            }
            #expect(victim.isAlive, "wait status \(String(describing: victim.waitStatus))")
            #expect(try ProcFS.status(of: ProcessID(victim.pid)).tracer == nil)
        }
        #expect(try Self.blockedSignals(victim.pid, victim.pid) == before)
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func injection_whenTracerDiesAtTheEntryOfAStubCall_threadRunsTheCallThenTheStub() throws {
        try Self.expectSurvivesDoomedTracers(checkingTracer: false) { pid, tid in
            try Self.enterStubCallAndAbandon(pid: pid, tid: tid)
        }
    }

    /// 20 rounds of `abandon` on a doomed tracer, one in four on the (sleeping) leader, the others
    /// on a busy worker: the victim lives on, untraced when `checkingTracer`, with its signal masks,
    /// its original behaviour and its workers making progress.
    private static func expectSurvivesDoomedTracers(checkingTracer: Bool,
                                                    _ abandon: @escaping (ProcessID, ThreadID) throws -> Void) throws {
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        let worker = try runningWorker(of: victim)
        let before = (try blockedSignals(victim.pid, victim.pid), try blockedSignals(victim.pid, worker))
        for round in 0..<20 {
            let tid = round % 4 == 0 ? victim.pid : worker  // the sleeping leader restarts its nanosleep
            try onDoomedTracer { try abandon(ProcessID(victim.pid), ThreadID(tid)) }
            #expect(victim.isAlive, "wait status \(String(describing: victim.waitStatus))")
            if checkingTracer { #expect(try ProcFS.status(of: ProcessID(victim.pid)).tracer == nil) }
        }
        #expect(try blockedSignals(victim.pid, victim.pid) == before.0)
        #expect(try blockedSignals(victim.pid, worker) == before.1)
        #expect(try Live.behaviour(victim) == Live.original)
        let first = try calls(victim)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try calls(victim) > first)
    }

    @Test func injection_beforeTheStubExists_leavesTheSignalMaskAlone() throws {
        // The first call (the reservation) runs on an existing `syscall` with the thread's own mask;
        // a tracer death during it is the remaining window (see docs/ENGINE.md), but it can no
        // longer leave the thread's signals blocked.
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        let before = try Self.blockedSignals(victim.pid, victim.pid)
        try Live.tracer.perform {
            let deadline = Monotonic.now.adding(microseconds: 2_000_000)
            let pid = ProcessID(victim.pid)
            let traced = try TracedProcess.stopOneThread(ThreadID(victim.pid), of: pid, deadline: deadline)
            defer { traced.release() }
            let memory = try ProcessMemory(pid: pid)
            let mappings = try ProcFS.maps(of: pid)
            let found = PatchLoader.syscallInstruction(pid: pid, mappings: mappings, memory: memory, cache: ObjectCache())
            let instruction = try #require(found)
            let injector = try SystemCallInjector(traced: traced, tid: ThreadID(victim.pid), instruction: instruction)
            defer { try? injector.restore() }
            _ = try injector.call(HostArchitecture.systemCalls.mmap, [0, 4096, 5, 0x22, UInt64.max, 0], deadline: deadline)
            #expect(try Self.blockedSignals(victim.pid, victim.pid) == before)
        }
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func singleStep_whenTracerDiesRightAfterASingleStep_threadLivesOn() throws {
        // A stepped thread keeps the trap flag until its tracer resumes it; a tracer that dies
        // instead used to leave it to die of SIGTRAP on its next instruction.
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        let worker = try #require(try Self.threadIDs(victim.pid).first { $0 != victim.pid })
        for _ in 0..<10 {
            try Self.onDoomedTracer {
                let deadline = Monotonic.now.adding(microseconds: 2_000_000)
                let traced = try TracedProcess.stopOneThread(ThreadID(worker), of: ProcessID(victim.pid), deadline: deadline)
                for _ in 0..<3 { #expect(try traced.singleStep(ThreadID(worker), deadline: deadline)) }
            }
            #expect(victim.isAlive, "wait status \(String(describing: victim.waitStatus))")
        }
        #expect(try Live.behaviour(victim) == Live.original)
    }
}
