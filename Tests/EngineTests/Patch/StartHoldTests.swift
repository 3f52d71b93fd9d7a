import Artifact
@testable import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Synchronization
import Testing

/// A minimal exec gate on a real fanotify permission instance: the same steps as the agent's, on
/// one tracer thread. It marks a private copy of the target (same bytes, same build-id), so an exec
/// of the shared fixture by another test never reaches it, and it answers every event until
/// `wait` ends it: an unanswered permission event would hold its opener, and the test, forever.
private final class TestGate: @unchecked Sendable {
    let instance: Int32
    let file: StartFile
    /// The private copy of the target that is marked; tests run this one.
    let path: String
    let scratch: TemporaryDirectory
    let tracer = TracerThread(name: "test-start-gate")
    let outcomes = Mutex<[StartHoldOutcome]>([])
    let reports = Mutex<[HostProcessReport]>([])
    /// Each hold's process, the thread seized at the open, and the thread held after the stepping.
    let threads = Mutex<[(pid: ProcessID, seized: ThreadID, held: ThreadID)]>([])
    private let stopping = Atomic<Bool>(false)
    private let reached = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(copying target: String, events: Fanotify.Events) throws {
        scratch = try TemporaryDirectory(prefix: "start-gate")
        path = scratch.path + "/" + URL(fileURLWithPath: target).lastPathComponent
        try FileManager.default.copyItem(atPath: target, toPath: path)
        instance = try Fanotify.createPermissionInstance()
        try Fanotify.mark(instance, path: path, events: events)
        file = try StartFile(path: path)
    }

    deinit {
        stopping.store(true, ordering: .relaxed)
        tracer.shutdown()
        // Closing the instance allows whatever is still pending.
        Descriptor.close(instance)
    }

    /// Holds the opener of each event until relocated (patching it to `hotpatch` when `patch`) for
    /// the first `requests` events; later events are answered at once. Runs until `wait` returns.
    func serve(requests: Int, hotpatch: Hotpatch, patch: Bool = true, beforeAnswer: @escaping @Sendable (ProcessID) -> Void = { _ in }) {
        tracer.submit { [self] in
            defer { finished.signal() }
            let patcher = StartPatcher(cache: ObjectCache())
            var buffer = [UInt8](repeating: 0, count: 8192)
            var served = 0
            while !stopping.load(ordering: .relaxed) {
                guard let ready = try? Descriptor.waitReadable([instance], timeoutMilliseconds: 50, subject: "gate"), ready[0] else { continue }
                for request in ((try? Fanotify.readPermissionRequests(instance, into: &buffer)) ?? nil) ?? [] {
                    var hold: StartHold?
                    if served < requests, let thread = request.thread, let pid = try? ProcFS.process(ofThread: ThreadID(thread.rawValue)) {
                        hold = try? StartHold.seize(thread: ThreadID(thread.rawValue), of: pid, file: file,
                                                    atExec: request.events.contains(.openExecPermission))
                        beforeAnswer(pid)
                    }
                    try? Fanotify.answer(instance, descriptor: request.descriptor, allow: true)
                    Descriptor.close(request.descriptor)
                    guard served < requests else { continue }
                    served += 1
                    if let hold {
                        let outcome = hold.runToRelocated(deadline: Monotonic.now.adding(microseconds: 2_000_000))
                        outcomes.withLock { $0.append(outcome) }
                        if let seized = request.thread { threads.withLock { $0.append((hold.pid, ThreadID(seized.rawValue), hold.thread)) } }
                        if outcome == .relocated, patch,
                           let report = patcher.patch(hold, desired: .cumulative(desired: hotpatch, levels: [hotpatch]), known: [hotpatch],
                                                      excluding: ExclusionPolicy()) {
                            reports.withLock { $0.append(report) }
                        }
                        hold.release()
                    }
                    if served == requests { reached.signal() }
                }
            }
        }
    }

    /// Waits (at most 30 s) until the first `requests` events were served, then ends `serve`.
    func wait() {
        _ = reached.wait(timeout: .now() + 30)
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }
}

extension LivePatchTests {
    @Test func startHold_whenTheTargetExecutableIsExecuted_theNewProcessRunsTheFixFromItsFirstCall() throws {
        let hotpatch = try Live.victimHotpatches().level1
        let victim = try Live.builder.victim()
        let runs = 8
        let gate = try TestGate(copying: victim, events: .openExecPermission)
        gate.serve(requests: runs, hotpatch: hotpatch)
        for run in 0..<runs {
            let once = try RunningProcess(gate.path, ["--once"])
            let line = try once.waitForLine(timeout: 10) { $0.hasPrefix("parse_length") }
            #expect(line == Live.level1, "run \(run): its first call ran \(line)")
            #expect(once.stop(within: 5))
        }
        gate.wait()
        #expect(gate.outcomes.withLock { $0 } == Array(repeating: .relocated, count: runs))
        for report in gate.reports.withLock({ $0 }) {
            guard case let .reconciled(patch) = report.result else { Issue.record("excluded: \(report.result)"); continue }
            #expect(patch.outcome == .applied)
        }
    }

    @Test func startHold_whenAThreadOtherThanTheLeaderExecutesTheTarget_followsItUnderTheLeadersIDAndTheNewProgramRunsTheFix() throws {
        let hotpatch = try Live.victimHotpatches().level1
        let victim = try Live.builder.victim()
        let executor = try Live.builder.threadExecutor()
        let runs = 4
        let gate = try TestGate(copying: victim, events: .openExecPermission)
        gate.serve(requests: runs, hotpatch: hotpatch)
        for run in 0..<runs {
            let once = try RunningProcess(executor, [gate.path, "--once"])
            let line = try once.waitForLine(timeout: 10) { $0.hasPrefix("parse_length") }
            #expect(line == Live.level1, "run \(run): its first call ran \(line)")
            #expect(once.stop(within: 5))
        }
        gate.wait()
        #expect(gate.outcomes.withLock { $0 } == Array(repeating: .relocated, count: runs))
        for (pid, seized, held) in gate.threads.withLock({ $0 }) {
            #expect(seized != pid.mainThread, "the exec came from a thread other than the leader")
            #expect(held == pid.mainThread, "held under the process's id after the exec")
        }
        for report in gate.reports.withLock({ $0 }) {
            guard case let .reconciled(patch) = report.result else { Issue.record("excluded: \(report.result)"); continue }
            #expect(patch.outcome == .applied)
        }
    }

    @Test func startHold_withoutAPatch_theProcessRunsItsOwnCodeUntouched_andIsNeitherStoppedNorTracedAfter() throws {
        let hotpatch = try Live.victimHotpatches().level1
        let victim = try Live.builder.victim()
        let gate = try TestGate(copying: victim, events: .openExecPermission)
        gate.serve(requests: 1, hotpatch: hotpatch, patch: false)
        let process = try RunningProcess(gate.path, ["--interval-ms", "20", "--threads", "1"])
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        gate.wait()
        #expect(gate.outcomes.withLock { $0 } == [.relocated])
        #expect(try Live.behaviour(process) == Live.original)
        let status = try ProcFS.status(of: ProcessID(process.pid))
        #expect(status.tracer == nil, "released: no tracer")
        #expect(status.state != "t" && status.state != "T")
    }

    @Test func startHold_whenTheOpenerOnlyReadsTheFile_letsItGoAsNotMapped() throws {
        let hotpatch = try Live.victimHotpatches().level1
        let victim = try Live.builder.victim()
        let gate = try TestGate(copying: victim, events: .openPermission)
        gate.serve(requests: 1, hotpatch: hotpatch)
        let reader = try RunningProcess("/bin/sh", ["-c", "cat \"$0\" > /dev/null; echo read", gate.path])
        _ = try reader.waitForLine(timeout: 10) { $0 == "read" }
        gate.wait()
        #expect(gate.outcomes.withLock { $0 } == [.notMapped] || gate.outcomes.withLock { $0 } == [.gone])
    }

    @Test func startHold_whenTheOpenerStopsItselfWhileHeld_letsItGoStoppedAndUntraced() throws {
        let hotpatch = try Live.victimHotpatches().level1
        let victim = try Live.builder.victim()
        let gate = try TestGate(copying: victim, events: .openPermission)
        gate.serve(requests: 1, hotpatch: hotpatch)
        let shell = try RunningProcess("/bin/sh", ["-c", "exec 3< \"$0\"; kill -STOP $$; echo resumed", gate.path])
        defer { _ = shell.stop(within: 5) }
        gate.wait()
        #expect(gate.outcomes.withLock { $0 } == [.notReached("the process was stopped by a signal")])
        // Stopped by its own signal, as it asked, and no longer traced.
        let deadline = Date().addingTimeInterval(5)
        var status = try ProcFS.status(of: ProcessID(shell.pid))
        while status.state != "T", Date() < deadline {
            usleep(10_000)
            status = try ProcFS.status(of: ProcessID(shell.pid))
        }
        #expect(status.state == "T")
        #expect(status.tracer == nil)
        shell.signal(SIGCONT)
        #expect(try shell.waitForLine(timeout: 5) { $0 == "resumed" } == "resumed")
    }
}
