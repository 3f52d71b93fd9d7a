import Artifact
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing

/// One release fixing two libraries a process maps: both change in one stop, or neither does.
extension LivePatchTests {
    static func twoObjects() throws -> TwoObjectProgram { try TwoObjectProgram(builder: Live.builder) }

    /// Starts the two-object program and waits until it is ready.
    static func startTwoObjects(_ program: TwoObjectProgram, _ arguments: [String] = []) throws -> RunningProcess {
        let process = try RunningProcess(program.program, arguments)
        _ = try process.waitForLine(timeout: 10) { $0 == "ready" }
        return process
    }

    /// Reconciles the whole process (both objects) to `desired` on the tracer thread, retrying busy.
    static func reconcileProcess(_ process: RunningProcess, desired: DesiredFixes, known: [Hotpatch],
                                 patcher: Patcher = Patcher()) throws -> ProcessPatchReport {
        let buildIDs = Set(known.flatMap { $0.targets.map(\.buildID) })
        let matches = TargetFinder(cache: patcher.cache).processes(buildIDs: buildIDs, among: [ProcessID(process.pid)])
        let match = try #require(matches.first)
        var report = try Live.tracer.perform { patcher.reconcile(match, desired: desired, known: ObjectFix.all(of: known)) }
        for _ in 0..<20 {
            guard case .busy = report.outcome else { break }
            Thread.sleep(forTimeInterval: 0.01)
            report = try Live.tracer.perform { patcher.reconcile(match, desired: desired, known: ObjectFix.all(of: known)) }
        }
        return report
    }

    /// Each object's entry of `report`, libA's first (the report lists them in address order).
    static func inOrder(_ report: ProcessPatchReport, _ program: TwoObjectProgram) -> [ObjectPatchReport] {
        [program.libraryA, program.libraryB].compactMap { path in report.objects.first { $0.path == path } }
    }

    @Test func oneRelease_fixingTwoLibraries_changesBothInOneStop_andRevertRestoresBoth() throws {
        let program = try Self.twoObjects()
        let targetA = try TwoObjectProgram.target(program.libraryA, function: "a_value", patch: program.fixA)
        let targetB = try TwoObjectProgram.target(program.libraryB, function: "b_value", patch: program.fixB)
        let release = Hotpatch(id: "two-hp1", baseline: "two", level: 1, targets: [targetA, targetB])
        let process = try Self.startTwoObjects(program)
        defer { process.stop() }
        #expect(try Live.behaviour(process) == TwoObjectProgram.original)

        let applied = try Self.reconcileProcess(process, desired: .cumulative(desired: release, levels: [release]), known: [release])

        #expect(applied.outcome == .applied, "\(applied.outcome)")
        // One redirect stop for both: a single pause, and both objects written in it.
        #expect((applied.pauseMicroseconds ?? 0) > 0)
        #expect(applied.objects.map(\.written) == [true, true])
        #expect(applied.objects.map(\.release) == [FixRelease(id: "two-hp1", level: 1), FixRelease(id: "two-hp1", level: 1)])
        #expect(Set(applied.objects.map(\.path)) == [program.libraryA, program.libraryB])
        #expect(try Live.behaviour(process) == "a=101 b=201")
        // Both patch images are mapped (each load its own hold), before that one stop.
        #expect(Live.mapsLines(process.pid, containing: "two-objects-fix-a1").count + Live.mapsLines(process.pid, containing: "two-objects-fix-b").count >= 2)

        let again = try Self.reconcileProcess(process, desired: .cumulative(desired: release, levels: [release]), known: [release])
        #expect(again.outcome == .alreadyApplied, "\(again.outcome)")
        #expect(again.pauseMicroseconds == nil)
        #expect(again.objects.map(\.release) == applied.objects.map(\.release))

        let reverted = try Self.reconcileProcess(process, desired: .none, known: [release])
        #expect(reverted.outcome == .reverted, "\(reverted.outcome)")
        #expect(reverted.objects.map(\.written) == [true, true])
        #expect(reverted.objects.map(\.release) == [nil, nil])
        #expect(try Live.behaviour(process) == TwoObjectProgram.original)
        #expect(process.isAlive)
    }

    @Test func oneRelease_whenOneLibrarysEntryIsForeign_patchesNeither_andNamesThatLibrary() throws {
        let program = try Self.twoObjects()
        let targetA = try TwoObjectProgram.target(program.libraryA, function: "a_value", patch: program.fixA)
        let targetB = try TwoObjectProgram.target(program.libraryB, function: "b_value", patch: program.fixB)
        let release = Hotpatch(id: "two-hp1", baseline: "two", level: 1, targets: [targetA, targetB])
        let process = try Self.startTwoObjects(program, ["--tamper-b"])
        defer { process.stop() }
        let entryOfA = try Self.entryBytes(process, targetA)

        let report = try Self.reconcileProcess(process, desired: .cumulative(desired: release, levels: [release]), known: [release])

        guard case let .unpatchable(.entryBytesDiffer(symbol, _)) = report.outcome else {
            Issue.record("expected entry bytes differ, got \(report.outcome)")
            return
        }
        #expect(symbol == "b_value")
        #expect(report.refusingObject?.path == program.libraryB)
        #expect(Self.inOrder(report, program).first?.refusal == nil)
        #expect(report.objects.map(\.written) == [false, false])
        #expect(report.pauseMicroseconds == nil)
        // libA was not patched either: its entry is untouched and it still runs its own code.
        #expect(try Self.entryBytes(process, targetA) == entryOfA)
        #expect(try Live.behaviour(process) == TwoObjectProgram.original)
    }

    @Test func levelNamingOnlyLibB_keepsLibAsEarlierFix_andALaterLevelReplacesIt() throws {
        let program = try Self.twoObjects()
        let one = Hotpatch(id: "two-hp1", baseline: "two", level: 1,
                           targets: [try TwoObjectProgram.target(program.libraryA, function: "a_value", patch: program.fixA)])
        let two = Hotpatch(id: "two-hp2", baseline: "two", level: 2,
                           targets: [try TwoObjectProgram.target(program.libraryB, function: "b_value", patch: program.fixB)])
        let three = Hotpatch(id: "two-hp3", baseline: "two", level: 3,
                             targets: [try TwoObjectProgram.target(program.libraryA, function: "a_value", patch: program.fixA2)])
        let levels = [one, two, three]
        let process = try Self.startTwoObjects(program)
        defer { process.stop() }

        #expect(try Self.reconcileProcess(process, desired: .cumulative(desired: one, levels: levels), known: levels).outcome == .applied)
        #expect(try Live.behaviour(process) == "a=101 b=3")

        let atTwo = try Self.reconcileProcess(process, desired: .cumulative(desired: two, levels: levels), known: levels)
        #expect(atTwo.outcome == .applied, "\(atTwo.outcome)")
        #expect(Self.inOrder(atTwo, program).map(\.written) == [false, true])
        #expect(Self.inOrder(atTwo, program).map(\.release?.id) == ["two-hp1", "two-hp2"])
        #expect(try Live.behaviour(process) == "a=101 b=201")

        // A fresh patcher reads from the process which level each object's fix comes from.
        let fresh = try Self.reconcileProcess(process, desired: .cumulative(desired: two, levels: levels), known: levels, patcher: Patcher())
        #expect(fresh.outcome == .alreadyApplied, "\(fresh.outcome)")
        #expect(Self.inOrder(fresh, program).map(\.release?.id) == ["two-hp1", "two-hp2"])

        let atThree = try Self.reconcileProcess(process, desired: .cumulative(desired: three, levels: levels), known: levels)
        #expect(atThree.outcome == .applied, "\(atThree.outcome)")
        #expect(Self.inOrder(atThree, program).map(\.release?.id) == ["two-hp3", "two-hp2"])
        #expect(try Live.behaviour(process) == "a=301 b=201")

        #expect(try Self.reconcileProcess(process, desired: .none, known: levels).outcome == .reverted)
        #expect(try Live.behaviour(process) == TwoObjectProgram.original)
    }

    /// The first bytes of `target`'s first function in `process`.
    static func entryBytes(_ process: RunningProcess, _ target: HotpatchTarget) throws -> [UInt8] {
        let match = try Live.match(process.pid, target.buildID)
        let memory = try OpenFile(path: "/proc/\(process.pid)/mem", flags: O_RDONLY)
        return try memory.read(at: match.object.loadBias + target.redirections[0].offset, count: 8)
    }
}

extension LivePatchTests {
    /// A vfork child (as posix_spawn makes) maps the targeted library through its parent's memory
    /// until it execs: patching it would write under the parent's running threads. It is busy
    /// instead, and nothing of either process changes; the parent is patched once the child is gone.
    @Test func apply_toAVforkChildBeforeItsExec_isBusy_writesNothing_andTheParentIsPatchedOnceTheChildIsGone() throws {
        let program = try Self.twoObjects()
        let targetA = try TwoObjectProgram.target(program.libraryA, function: "a_value", patch: program.fixA)
        let release = Hotpatch(id: "two-vfork-hp1", baseline: "two", level: 1, targets: [targetA])
        let desired = DesiredFixes.cumulative(desired: release, levels: [release])
        let process = try Self.startTwoObjects(program, ["--vfork-child", "3"])
        defer { process.stop() }
        let line = try process.waitForLine(timeout: 10) { $0.hasPrefix("vfork child ") }
        let child = ProcessID(try #require(Int32(line.dropFirst("vfork child ".count))))
        #expect(ProcFS.sharesMemory(child, with: ProcessID(process.pid)) == true)
        #expect(ProcFS.sharesMemory(ProcessID(process.pid), with: ProcessID(getpid())) == false, "an exec'd child has its own")

        let patcher = Patcher()
        let match = try #require(TargetFinder(cache: patcher.cache).processes(buildIDs: [targetA.buildID], among: [child]).first,
                                 "the vfork child maps libA")
        let report = try Live.tracer.perform { patcher.reconcile(match, desired: desired, known: ObjectFix.all(of: [release])) }
        guard case let .busy(reason) = report.outcome else {
            Issue.record("a vfork child was not left alone: \(report.outcome)")
            return
        }
        #expect(reason.contains("shares its memory with its parent, PID \(process.pid)"), "\(reason)")
        #expect(Live.mapsLines(process.pid, containing: "two-objects-fix-a1").isEmpty, "no patch image mapped in the shared memory")
        #expect(try Live.behaviour(process) == TwoObjectProgram.original)

        _ = try process.waitForLine(timeout: 10) { $0 == "vfork done" }
        let applied = try Self.reconcileProcess(process, desired: desired, known: [release])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        #expect(try Live.behaviour(process) == "a=101 b=3")
    }
}
