import Artifact
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

/// One hazard per test: each starts its own victim and checks the process survives whatever the
/// outcome, and that a refusal names its reason.
extension LivePatchTests {
    private static func plannedTarget(patch source: String, replacements: [(String, String)], references: [String] = [],
                                      mutate: (inout [FunctionRedirection]) -> Void = { _ in }) throws -> HotpatchTarget {
        let victimPath = try Live.builder.victim()
        let patchPath = try Live.builder.patchObject(source)
        let plan = try RedirectionPlanner.plan(target: ELFFile.load(path: victimPath), debugFile: nil,
                                               patchObject: PatchObject(path: patchPath),
                                               replacements: replacements.map { (symbol: $0.0, replacement: $0.1) },
                                               references: references)
        var redirections = plan.redirections
        mutate(&redirections)
        return HotpatchTarget(buildID: plan.buildID, pathHint: victimPath, patchObjectPath: patchPath,
                              redirections: redirections, references: plan.references)
    }

    @Test func apply_whenThreadBlocksInsideThePatchWindow_reportsBusyThenSucceedsOnceItLeaves() throws {
        let target = try Self.plannedTarget(patch: "patch_parked.c", replacements: [("parked_call", "parked_call_fixed")])
        let victim = try Live.startVictim(["--threads", "2", "--parked"])
        defer { victim.stop() }
        let parkedLine = try victim.line { $0.hasPrefix("parked tid=") }
        let parkedTID = Int32(parkedLine.dropFirst("parked tid=".count))!
        Thread.sleep(forTimeInterval: 0.05)

        let blocked = try Live.reconcile(victim, desired: target, known: [target], retries: 2)
        guard case let .busy(reason) = blocked.outcome else {
            Issue.record("expected busy, got \(blocked.outcome), evacuated \(blocked.evacuatedThreads)")
            return
        }
        #expect(reason.contains("thread \(parkedTID)"), "\(reason)")
        #expect(victim.isAlive)
        #expect(try Live.behaviour(victim) == Live.original)

        try Ptrace.signalThread(process: ProcessID(victim.pid), thread: ThreadID(parkedTID), SIGUSR2)
        _ = try victim.waitForLine { $0 == "unparked" }
        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        #expect(victim.isAlive)
    }

    @Test func apply_whenThreadSitsInPatchWindow_evacuatesItBySingleStepsAndSucceeds() throws {
        let target = try Self.plannedTarget(patch: "patch_parked.c", replacements: [("spin_call", "spin_call_fixed")])
        let victim = try Live.startVictim(["--threads", "1", "--spinner"])
        defer { victim.stop() }
        var evacuated = 0
        // At least 20 rounds; more (up to 200) while the spinner has not been caught yet, which
        // on a loaded machine can mean it has not even been scheduled for the first time.
        for round in 0..<200 where round < 20 || evacuated == 0 {
            let applied = try Live.reconcile(victim, desired: target, known: [target])
            #expect(applied.outcome == .applied, "\(applied.outcome)")
            evacuated += applied.evacuatedThreads
            let reverted = try Live.reconcile(victim, desired: nil, known: [target])
            #expect(reverted.outcome == .reverted, "\(reverted.outcome)")
            evacuated += reverted.evacuatedThreads
        }
        #expect(evacuated > 0, "the spinner should have been caught inside the window at least once")
        #expect(victim.isAlive)
    }

    @Test func apply_whenAStepOutOfTheWindowEntersACallMadeThere_isBusy_andTheVictimLives() throws {
        let target = try Self.plannedTarget(patch: "patch_parked.c", replacements: [("call_spin", "call_spin_fixed")])
        let victim = try Live.startVictim(["--threads", "1", "--call-spinner"])
        defer { victim.stop() }
        // The spinner is inside call_spin's first bytes almost all the time: most attempts end
        // busy after the re-stops, a step out of the window lands on the entry (applied) or in
        // the called function (busy, its return address inside the window).
        var steppedIntoTheCall = 0
        var applied = 0
        for attempt in 0..<400 where attempt < 40 || steppedIntoTheCall == 0 {
            let report = try Live.reconcile(victim, desired: target, known: [target], retries: 0)
            switch report.outcome {
            case let .busy(reason):
                if reason.contains("stepped into a call made inside a patch window") { steppedIntoTheCall += 1 }
            case .applied:
                applied += 1
                let reverted = try Live.reconcile(victim, desired: nil, known: [target])
                #expect(reverted.outcome == .reverted, "\(reverted.outcome)")
            default:
                Issue.record("attempt \(attempt): \(report.outcome)")
            }
            guard victim.isAlive else { Issue.record("the victim died after attempt \(attempt)"); break }
        }
        #expect(steppedIntoTheCall > 0, "no step entered the call (applied \(applied) times)")
        Thread.sleep(forTimeInterval: 0.05)
        #expect(victim.isAlive)
    }

    @Test func apply_whenASignalHandlerInterruptedTheFirstBytes_isBusyUntilItReturnsThenApplies() throws {
        let target = try Self.plannedTarget(patch: "patch_parked.c", replacements: [("parked_call", "parked_call_fixed")])
        let victim = try Live.startVictim(["--threads", "1", "--handler-parked"])
        defer { victim.stop() }
        let parkedLine = try victim.line { $0.hasPrefix("handler-parked tid=") }
        let parkedTID = Int32(parkedLine.dropFirst("handler-parked tid=".count))!
        _ = try victim.line { $0 == "in handler" }
        Thread.sleep(forTimeInterval: 0.05)

        // The thread sits in its handler's pause(), outside every window; only its signal frame
        // says it will come back 3 bytes into parked_call.
        let blocked = try Live.reconcile(victim, desired: target, known: [target], retries: 2)
        guard case let .busy(reason) = blocked.outcome else {
            Issue.record("expected busy, got \(blocked.outcome)")
            return
        }
        #expect(reason.contains("thread \(parkedTID)") && reason.contains("signal handler"), "\(reason)")
        #expect(victim.isAlive)

        // Once the handler has returned through the unchanged bytes, the patch applies.
        try Ptrace.signalThread(process: ProcessID(victim.pid), thread: ThreadID(parkedTID), SIGUSR2)
        _ = try victim.waitForLine { $0 == "handler returned" }
        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        Thread.sleep(forTimeInterval: 0.05)
        #expect(victim.isAlive)
    }

    @Test func apply_whileThreadsAreSpawnedDuringTheStop_holdsNewThreadsAndSucceeds() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "4", "--spawn-threads"])
        defer { victim.stop() }
        for _ in 0..<50 {
            let applied = try Live.reconcile(victim, desired: target, known: [target])
            let reverted = try Live.reconcile(victim, desired: nil, known: [target])
            guard applied.outcome == .applied, reverted.outcome == .reverted else {
                Issue.record("\(applied.outcome) / \(reverted.outcome)")
                break
            }
        }
        #expect(victim.isAlive)
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func apply_duringASignalStorm_succeedsAndSignalsStillArrive() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "4"])
        defer { victim.stop() }
        let storming = ManagedAtomicFlag()
        let stormer = Thread {
            while !storming.isSet { kill(victim.pid, SIGUSR1); usleep(50) }
        }
        stormer.start()
        defer { storming.set() }
        // A round that cannot even find the victim says whether it still lives, and how it ended.
        func outcome(_ desired: HotpatchTarget?, round: Int) -> PatchOutcome? {
            do { return try Live.reconcile(victim, desired: desired, known: [target]).outcome } catch {
                let end = victim.isAlive ? "it lives" : "it ended, wait status \(victim.waitStatus.map { String($0) } ?? "unknown")"
                let maps: String
                do { maps = "\(try ProcFS.maps(of: ProcessID(victim.pid)).count) mappings" } catch { maps = "maps unreadable: \(error)" }
                Issue.record("round \(round): \(error); \(end); \(maps); the executable's: \(Live.mapsLines(victim.pid, containing: "victim"))")
                return nil
            }
        }
        for round in 0..<100 {
            guard let applied = outcome(target, round: round) else { break }
            #expect(applied == .applied, "round \(round): \(applied)")
            guard let reverted = outcome(nil, round: round) else { break }
            #expect(reverted == .reverted, "round \(round): \(reverted)")
        }
        storming.set()
        let line = try victim.freshLine()
        let signals = Int(line.split(separator: "signals=").last ?? "0") ?? 0
        #expect(signals > 100, "\(line)")
        #expect(victim.isAlive)
    }

    @Test func apply_whenProcessIsKilledMidPatch_reportsGoneAndLetsItsParentReapIt() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        for round in 0..<20 {
            let victim = try Live.startVictim(["--threads", "8"])
            let match = try Live.match(victim.pid, target.buildID)
            let killer = Thread {
                usleep(UInt32.random(in: 0...3000))
                kill(victim.pid, SIGKILL)
            }
            let started = Date()
            killer.start()
            let patcher = Patcher()
            var outcomes: [PatchOutcome] = []
            for _ in 0..<50 {
                let report = try Live.tracer.perform { patcher.reconcile(match, desired: target, known: [target]) }
                outcomes.append(report.outcome)
                if report.outcome == .unpatchable(.processGone) { break }
                _ = try Live.tracer.perform { patcher.reconcile(match, desired: nil, known: [target]) }
            }
            #expect(Date().timeIntervalSince(started) < 10, "round \(round) took too long")
            #expect(outcomes.last == .unpatchable(.processGone), "round \(round): \(outcomes.suffix(3))")
            // Every thread we held is reaped by us, so the parent can reap the process at once.
            #expect(victim.stop(within: 2), "round \(round): the killed victim stayed a zombie")
        }
    }

    @Test func release_whenTheHeldProcessWasKilled_reapsItsThreadsSoItsParentCanReapIt() throws {
        for round in 0..<5 {
            let victim = try Live.startVictim(["--threads", "8"])
            let pid = victim.pid
            let deadline = Monotonic.now.adding(microseconds: 2_000_000)
            try Live.tracer.perform {
                let traced = try TracedProcess.stopAllThreads(pid: ProcessID(pid), deadline: deadline)
                #expect(traced.stoppedThreadIDs.count >= 9)
                kill(pid, SIGKILL)
                traced.release()
            }
            #expect(victim.stop(within: 1), "round \(round): the killed victim stayed a zombie")
        }
    }

    @Test func apply_whenAnotherTracerHoldsTheProcess_isUnpatchableNamingTheTracer() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let tracer = try RunningProcess(Live.builder.build("tracer.c", flags: ["-O1"]), ["\(victim.pid)"])
        defer { tracer.stop() }
        _ = try tracer.waitForLine { $0.hasPrefix("tracing") }
        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .unpatchable(.tracedBy(tracer: ThreadID(tracer.pid))))
        tracer.stop()
        #expect(victim.isAlive)
        #expect(try Live.behaviour(victim) == Live.original)
    }

    /// The State letter and TracerPid of `pid`, as /proc/PID/status gives them.
    private static func stateAndTracer(_ pid: Int32) throws -> (state: Character, tracer: ThreadID?) {
        let status = try ProcFS.status(of: ProcessID(pid))
        return (status.state, status.tracer)
    }

    @Test func apply_whenTheProcessIsStoppedBySignal_isBusyAndLeavesItStoppedUntracedThenAppliesOnceContinued() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        victim.signal(SIGSTOP)
        let deadline = Date().addingTimeInterval(5)
        while try Self.stateAndTracer(victim.pid).state != "T", Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        try #require(try Self.stateAndTracer(victim.pid).state == "T")

        let stopped = try Live.reconcile(victim, desired: target, known: [target], retries: 0)
        #expect(stopped.outcome == .busy(reason: "the process is stopped by a signal"), "\(stopped.outcome)")
        #expect(stopped.injectedSystemCalls == 0)
        // Left as it was: still stopped by its signal, traced by nobody. A thread let go in its
        // group stop wakes for a moment (the kernel re-enters the stop on its way back to user
        // space), and its state can read R for those microseconds: asked until it settles.
        var after = try Self.stateAndTracer(victim.pid)
        var states = [after.state]
        let settle = Date().addingTimeInterval(1)
        while after.state != "T" || after.tracer != nil, Date() < settle {
            Thread.sleep(forTimeInterval: 0.001)
            after = try Self.stateAndTracer(victim.pid)
            states.append(after.state)
        }
        #expect(after.state == "T" && after.tracer == nil, "states \(states), tracer \(String(describing: after.tracer))")

        victim.signal(SIGCONT)
        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        // The user ids and name reported are the process's, as the load read them with it held.
        #expect(applied.statusBefore?.processID == ProcessID(victim.pid))
        #expect(applied.statusBefore?.userIDs.real == getuid())
        #expect(applied.statusBefore?.name == String(try ProcFS.executablePath(of: ProcessID(victim.pid)).split(separator: "/").last!.prefix(15)))
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func apply_whenTheOnlyThreadIsInSeccompStrictMode_isUnpatchableWithNothingInjected() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "0", "--seccomp", "strict"])
        defer { victim.stop() }
        let report = try Live.reconcile(victim, desired: target, known: [target], retries: 0)
        #expect(report.outcome == .unpatchable(.seccompStrictMode), "\(report.outcome)")
        #expect(report.injectedSystemCalls == 0)
        // Any call strict mode forbids would have killed it.
        Thread.sleep(forTimeInterval: 0.05)
        #expect(victim.isAlive)
        let after = try Self.stateAndTracer(victim.pid)
        #expect(after.state == "S" && after.tracer == nil, "state \(after.state), tracer \(String(describing: after.tracer))")
    }

    @Test func apply_whenABreakpointSitsAtAnEntry_isRefusedAndNothingIsWritten() throws {
        let target = try Self.plannedTarget(patch: "patch_level1.c", replacements: [
            ("parse_length", "parse_length_fixed"), ("rarely_called", "parse_length_fixed")])
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let match = try Live.match(victim.pid, target.buildID)
        let rarely = target.redirections.first { $0.symbol == "rarely_called" }!
        let address = match.object.loadBias + rarely.offset
        let memory = try ProcessMemory(pid: ProcessID(victim.pid))
        try memory.write([0xCC], at: address)

        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .unpatchable(.entryBytesDiffer(symbol: "rarely_called", address: address)))
        #expect(report.pauseMicroseconds == nil)
        #expect(try Live.behaviour(victim) == Live.original, "parse_length must not be patched alone")
        #expect(victim.isAlive)
    }

    @Test func apply_whenFunctionIsShorterThanAnyJump_isUnpatchableWithTheSizes() throws {
        let target = try Self.plannedTarget(patch: "patch_level1.c", replacements: [("parse_length", "parse_length_fixed")]) {
            let victim = try! ELFFile.load(path: Live.builder.victim())
            $0[0].size = 4
            $0[0].sha256 = Patcher.digest(try! victim.bytes(atVirtualAddress: $0[0].offset, count: 4))
        }
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .unpatchable(.functionTooShort(symbol: "parse_length", size: 4, needed: 5)))
        #expect(victim.isAlive)
    }

    @Test func reconcile_whenPidWasReusedByAnotherProcess_touchesNothing() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        var match = try Live.match(victim.pid, target.buildID)
        match.process = ProcessIdentity(pid: match.process.pid, startTime: match.process.startTime &- 1)
        let report = try Live.tracer.perform { Patcher().reconcile(match, desired: target, known: [target]) }
        #expect(report.outcome == .unpatchable(.processGone))
        #expect(try Live.behaviour(victim) == Live.original)
    }

    @Test func reconcile_neverTouchesPIDOneOrItself() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let patcher = Patcher()
        for pid in [ProcessID(1), ProcessID.current] {
            let identity = try ProcFS.identity(of: pid)
            let object = LoadedObject(path: "/x", isDeleted: false, buildID: target.buildID, loadBias: 0,
                                      mappings: [], readablePath: "/x")
            let report = try Live.tracer.perform { patcher.reconcile(TargetMatch(process: identity, object: object), desired: target) }
            guard case .unpatchable(.protectedProcess) = report.outcome else {
                Issue.record("\(pid): \(report.outcome)")
                continue
            }
        }
    }

    @Test func apply_inAnotherMountNamespace_loadsThePatchThroughAMemfd() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        // The patch object's folder is hidden under an empty tmpfs in the victim's namespace.
        let folder = (target.patchObjectPath as NSString).deletingLastPathComponent
        let script = "mount -t tmpfs none \"$1\" && shift && exec \"$@\""
        let victimPath = try Live.builder.victim()
        let copy = folder + "/../victim-mountns-\(getpid())"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: victimPath, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let victim = try RunningProcess("/usr/bin/unshare", ["--mount", "--propagation", "private", "sh", "-c", script,
                                                              "sh", folder, copy, "--threads", "2", "--interval-ms", "20"])
        defer { victim.stop() }
        _ = try victim.waitForLine { $0.hasPrefix("ready") }
        #expect(!FileManager.default.fileExists(atPath: "/proc/\(victim.pid)/root" + target.patchObjectPath))
        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(!Live.mapsLines(victim.pid, containing: "/memfd:hotpatch:").isEmpty)
        #expect(try Live.behaviour(victim) == Live.level1)
    }
}

/// A flag one thread sets and another polls.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
