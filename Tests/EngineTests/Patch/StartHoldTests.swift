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
    /// Every marked file (`file` among them).
    let targets: Set<StartFile>
    /// The private copy of the target that is marked; tests run this one.
    let path: String
    let scratch: TemporaryDirectory
    let tracer = TracerThread(name: "test-start-gate")
    /// Used on `tracer` alone.
    private lazy var patcher = StartPatcher(cache: ObjectCache())
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
        targets = [file]
    }

    /// A gate on `path` itself (a library of a test's own, which others link by path), whose holds
    /// know `others` as targeted files too. Those are not marked: this gate serves one event at a
    /// time, and the open of one of them by a thread it holds would wait for it for ever (the
    /// agent's gate answers such an event from another thread, holding nothing).
    init(marking path: String, alsoTargeting others: [String], events: Fanotify.Events) throws {
        scratch = try TemporaryDirectory(prefix: "start-gate")
        self.path = path
        instance = try Fanotify.createPermissionInstance()
        try Fanotify.mark(instance, path: path, events: events)
        file = try StartFile(path: path)
        var files: Set<StartFile> = [file]
        for other in others { files.insert(try StartFile(path: other)) }
        targets = files
    }

    deinit {
        stopping.store(true, ordering: .relaxed)
        tracer.shutdown()
        // Closing the instance allows whatever is still pending.
        Descriptor.close(instance)
    }

    /// Holds the opener of each event until relocated (patching it to `hotpatch` when `patch`) for
    /// the first `requests` events; later events are answered at once. Runs until `wait` returns.
    /// As in the agent's gate, the events are read on a thread of their own, which answers the
    /// test process's own opens at once (the holds' and the patcher's reads of a marked file) and
    /// hands every other to the tracer thread, which seizes the opener, answers, and holds it.
    func serve(requests: Int, hotpatch: Hotpatch, patch: Bool = true, beforeAnswer: @escaping @Sendable (ProcessID) -> Void = { _ in }) {
        let reader = Thread { [self] in
            defer { finished.signal() }
            var buffer = [UInt8](repeating: 0, count: 8192)
            var served = 0
            while !stopping.load(ordering: .relaxed) {
                guard let ready = try? Descriptor.waitReadable([instance], timeoutMilliseconds: 50, subject: "gate"), ready[0] else { continue }
                for request in ((try? Fanotify.readPermissionRequests(instance, into: &buffer)) ?? nil) ?? [] {
                    let own = request.thread.map { access("/proc/self/task/\($0.rawValue)", F_OK) == 0 } ?? false
                    guard !own, served < requests else {
                        try? Fanotify.answer(instance, descriptor: request.descriptor, allow: true)
                        Descriptor.close(request.descriptor)
                        continue
                    }
                    served += 1
                    let last = served == requests
                    tracer.submit { [self] in
                        defer { if last { reached.signal() } }
                        hold(request, hotpatch: hotpatch, patch: patch, beforeAnswer: beforeAnswer)
                    }
                }
            }
        }
        reader.start()
    }

    /// One event on the tracer thread: the opener seized, the event answered, then held.
    private func hold(_ request: Fanotify.PermissionRequest, hotpatch: Hotpatch, patch: Bool, beforeAnswer: (ProcessID) -> Void) {
        var hold: StartHold?
        if let thread = request.thread, let pid = try? ProcFS.process(ofThread: ThreadID(thread.rawValue)),
           let opened = try? StartFile(path: "/proc/self/fd/\(request.descriptor)") {
            hold = try? StartHold.seize(thread: ThreadID(thread.rawValue), of: pid, file: opened, targets: targets,
                                        atExec: request.events.contains(.openExecPermission))
            beforeAnswer(pid)
        }
        try? Fanotify.answer(instance, descriptor: request.descriptor, allow: true)
        Descriptor.close(request.descriptor)
        guard let hold else { return }
        let outcome = hold.runToRelocated(deadline: Monotonic.now.adding(microseconds: 2_000_000))
        outcomes.withLock { $0.append(outcome) }
        if let seized = request.thread { threads.withLock { $0.append((hold.pid, ThreadID(seized.rawValue), hold.thread)) } }
        func patchHeld() {
            if patch, let report = patcher.patch(hold, desired: .cumulative(desired: hotpatch, levels: [hotpatch]),
                                                 known: [hotpatch], excluding: ExclusionPolicy()) {
                reports.withLock { $0.append(report) }
            }
        }
        if outcome == .relocated { patchHeld() }
        // As the agent's gate: on to each other targeted object the load relocates after the file.
        while outcome == .relocated, hold.awaitsAnotherTarget {
            let next = hold.runToNextRelocated(deadline: Monotonic.now.adding(microseconds: 2_000_000))
            outcomes.withLock { $0.append(next) }
            guard next == .relocated else { break }
            patchHeld()
        }
        hold.release()
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

    /// libA, libB (linking libA, `extra` in its source) and libX (linking both) in `directory`, a
    /// loader that dlopens libX and prints "a=N b=M", and a release fixing both libraries (a_value
    /// 2 → 102, b_value 3 → 203).
    private static func dlopenedPair(in directory: String, libraryB extra: String = "", tag: String)
        throws -> (libraryA: String, libraryB: String, libraryX: String, loader: String, release: Hotpatch) {
        let libraryA = try FixtureBuilder.compile(text: "int a_value(void) { return 2; }\n", to: directory + "/libpaira.so",
                                                  flags: ["-O0", "-shared", "-fPIC"])
        let libraryB = try FixtureBuilder.compile(text: "int a_value(void);\n" + extra + """
            int b_value(void) { return 3 + 0 * a_value(); }
            """, to: directory + "/libpairb.so", flags: ["-O0", "-shared", "-fPIC", "-Wl,--no-as-needed", libraryA])
        let libraryX = try FixtureBuilder.compile(text: "int x_value(void) { return 1; }\n", to: directory + "/libpairx.so",
                                                  flags: ["-O0", "-shared", "-fPIC", "-Wl,--no-as-needed", libraryA, libraryB])
        let loader = try FixtureBuilder.compile(text: """
            #include <dlfcn.h>
            #include <stdio.h>
            int main(int argc, char **argv) {
                void *x = dlopen(argv[1], RTLD_NOW);
                int (*a)(void) = x ? (int (*)(void))dlsym(x, "a_value") : NULL;
                int (*b)(void) = x ? (int (*)(void))dlsym(x, "b_value") : NULL;
                if (!a || !b) { printf("dlopen failed: %s\\n", dlerror()); return 1; }
                printf("a=%d b=%d\\n", a(), b());
                return 0;
            }
            """, to: directory + "/pair-loader", flags: ["-O1"])
        let fixA = try FixtureBuilder.compile(text: "int a_value_fixed(void) { return 102; }\n", to: directory + "/pair-fix-a-\(tag).so",
                                              flags: ["-O2", "-shared", "-fPIC"])
        let fixB = try FixtureBuilder.compile(text: "int b_value_fixed(void) { return 203; }\n", to: directory + "/pair-fix-b-\(tag).so",
                                              flags: ["-O2", "-shared", "-fPIC"])
        let release = Hotpatch(id: "pair-\(tag)", baseline: "pair", level: 1,
                               targets: [try TwoObjectProgram.target(libraryA, function: "a_value", patch: fixA),
                                         try TwoObjectProgram.target(libraryB, function: "b_value", patch: fixB)])
        return (libraryA, libraryB, libraryX, loader, release)
    }

    /// Runs `pair`'s loader `runs` times through a gate that holds the opener of libA and knows
    /// libB as a target too: each run's first line, and the gate's outcomes and reports.
    private static func loadPair(_ pair: (libraryA: String, libraryB: String, libraryX: String, loader: String, release: Hotpatch),
                                 runs: Int) throws -> (lines: [String], outcomes: [StartHoldOutcome], reports: [HostProcessReport]) {
        let gate = try TestGate(marking: pair.libraryA, alsoTargeting: [pair.libraryB], events: .openPermission)
        gate.serve(requests: runs, hotpatch: pair.release)
        var lines: [String] = []
        for _ in 0..<runs {
            let loader = try RunningProcess(pair.loader, [pair.libraryX])
            lines.append(try loader.waitForLine(timeout: 10) { $0.hasPrefix("a=") || $0.hasPrefix("dlopen") })
            #expect(loader.stop(within: 5))
        }
        gate.wait()
        return (lines, gate.outcomes.withLock { $0 }, gate.reports.withLock { $0 })
    }

    @Test func startHold_whenADlopenRelocatesASecondTargetAfterTheFile_patchesTheFileAtItsMark_thenTheSecondAtItsOwn() throws {
        let scratch = try TemporaryDirectory(prefix: "start-pair")
        defer { scratch.remove() }
        let pair = try Self.dlopenedPair(in: scratch.path, tag: "plain")
        let runs = 3
        // libA is opened first (held) and relocated first; libB, which links it, after it.
        let loaded = try Self.loadPair(pair, runs: runs)
        #expect(loaded.lines == Array(repeating: "a=102 b=203", count: runs), "the first calls of each run")
        #expect(loaded.outcomes == Array(repeating: [StartHoldOutcome.relocated, .relocated], count: runs).flatMap { $0 })
        for report in loaded.reports {
            guard case let .reconciled(patch) = report.result else { Issue.record("excluded: \(report.result)"); continue }
            #expect(patch.outcome == .applied, "\(patch.outcome)")
        }
    }

    @Test func startHold_whenTheSecondTargetsRelocationMakesASystemCall_patchesTheFileAlone_andSaysWhyNotTheSecond() throws {
        let scratch = try TemporaryDirectory(prefix: "start-pair")
        defer { scratch.remove() }
        // libB's relocation calls an IFUNC resolver (bound at once: RTLD_NOW) that makes a system
        // call: the hold cannot tell that from a constructor's, and stops waiting for libB.
        let resolver = """
            #include <unistd.h>
            #include <sys/syscall.h>
            static int b_plain(void) { return 0; }
            static void *b_resolve(void) { syscall(SYS_getppid); return (void *)b_plain; }
            int b_pick(void) __attribute__((ifunc("b_resolve")));
            int b_uses_pick(void) { return b_pick(); }

            """
        let pair = try Self.dlopenedPair(in: scratch.path, libraryB: resolver, tag: "ifunc")
        let runs = 3
        let loaded = try Self.loadPair(pair, runs: runs)
        // libA fixed from the first call; libB left to the usual path, which this test does not run.
        #expect(loaded.lines == Array(repeating: "a=102 b=3", count: runs), "the first calls of each run")
        let waited = StartHoldOutcome.notReached("the load made another system call before the mark of 1 more targeted object(s)")
        #expect(loaded.outcomes == Array(repeating: [StartHoldOutcome.relocated, waited], count: runs).flatMap { $0 })
    }

    @Test func startHold_whenTheOpenerMapsAnotherTargetAgainAndAgain_isLetGoAtItsBound_untracedAndRunningOn() throws {
        // A program of a local user's: it opens and maps libA (held, the other targets followed
        // from then on), then maps libB 20,000 times, each map a look of the hold at its
        // descriptor, and never relocates anything.
        let scratch = try TemporaryDirectory(prefix: "start-pair")
        defer { scratch.remove() }
        let pair = try Self.dlopenedPair(in: scratch.path, tag: "mapper")
        let mapper = try FixtureBuilder.compile(text: """
            #include <fcntl.h>
            #include <stdio.h>
            #include <sys/mman.h>
            int main(int argc, char **argv) {
                int a = open(argv[1], O_RDONLY);
                if (a < 0 || mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, a, 0) == MAP_FAILED) return 1;
                int b = open(argv[2], O_RDONLY);
                long maps = 0;
                for (int i = 0; i < 20000; i++) {
                    void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, b, 0);
                    if (p != MAP_FAILED) { munmap(p, 4096); maps++; }
                }
                printf("mapped %ld\\n", maps);
                return 0;
            }
            """, to: scratch.path + "/mapper", flags: ["-O1"])
        let gate = try TestGate(marking: pair.libraryA, alsoTargeting: [pair.libraryB], events: .openPermission)
        gate.serve(requests: 1, hotpatch: pair.release)
        let started = Date()
        let process = try RunningProcess(mapper, [pair.libraryA, pair.libraryB])
        defer { _ = process.stop(within: 5) }
        let line = try process.waitForLine(timeout: 30) { $0.hasPrefix("mapped") }
        gate.wait()
        #expect(line == "mapped 20000")
        // Let go at the hold's bound (2 s here, 500 ms in the agent), then ran on untraced.
        #expect(gate.outcomes.withLock { $0 } == [.notReached("the deadline passed before the file's relocation")])
        #expect(Date().timeIntervalSince(started) < 20, "the hold ended at its bound")
        #expect(gate.reports.withLock { $0 }.isEmpty, "nothing was patched")
    }
}
