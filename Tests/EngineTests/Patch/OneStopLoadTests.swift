import Architecture
import Artifact
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

/// The load's calls after the reservation run as one injected program that stops the thread once,
/// with a signal the process ignores (or, where none can be used, at every call): what it maps,
/// what it reports when a call fails in the middle, and what it leaves behind.
extension LivePatchTests {
    /// The descriptors a process holds, as "N -> target" (the targets, since numbers are reused).
    private static func descriptors(_ pid: Int32) throws -> [String] {
        let directory = "/proc/\(pid)/fd"
        return try FileManager.default.contentsOfDirectory(atPath: directory).map { entry in
            "\(entry) -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(entry)")) ?? "?")
        }.sorted()
    }

    /// Sets the soft RLIMIT_DATA of process `pid` (`SOFT:` as prlimit(1) takes it).
    private static func setDataLimit(of pid: Int32, to limit: String) throws {
        let tool = Process()
        tool.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        tool.arguments = ["--pid", "\(pid)", "--data=\(limit)"]
        try tool.run()
        tool.waitUntilExit()
        try #require(tool.terminationStatus == 0, "prlimit --pid \(pid) --data=\(limit)")
    }

    /// Anonymous executable mappings (a reservation's marker page) and mappings of `name`.
    private static func loadMappings(_ pid: Int32, name: String) -> [String] {
        Live.mapsLines(pid, containing: name) + Live.mapsLines(pid, containing: " r-xp 00000000 00:00 0 ")
    }

    /// Loads `target` into `victim` with its soft RLIMIT_DATA at one page (private writable
    /// mappings count against it: the patch object's writable segment cannot be mapped, ENOMEM,
    /// after its read-only and code segments were), expects the load undone (the victim alive,
    /// nothing of the load mapped, no descriptor left open) and returns the refusal's detail; nil
    /// (an issue recorded) when the load was not refused for its mapping.
    private static func loadFailingOnTheDataLimit(_ victim: RunningProcess, _ target: HotpatchTarget) throws -> String? {
        let name = PatchLoader.name(of: target.patchObjectPath)
        let descriptors = try descriptors(victim.pid)
        let mappings = loadMappings(victim.pid, name: name)
        try setDataLimit(of: victim.pid, to: "4096:")
        let report = try Live.reconcile(victim, desired: target, known: [target])
        try setDataLimit(of: victim.pid, to: "unlimited:")
        guard case let .unpatchable(.cannotMapPatchObject(detail)) = report.outcome else {
            Issue.record("\(report.outcome)")
            return nil
        }
        #expect(victim.isAlive)
        #expect(loadMappings(victim.pid, name: name) == mappings, "nothing of the load is left mapped")
        #expect(try Self.descriptors(victim.pid) == descriptors, "no descriptor is left open")
        return detail
    }

    /// How many calls a load of `target`'s patch object makes when it stops once: the reservation,
    /// openat, one mmap per file-backed part and per .bss part of a segment, close, and the ending.
    private static func oneStopCalls(_ target: HotpatchTarget) throws -> Int {
        let patch = try PatchObject(path: target.patchObjectPath)
        let mappings = patch.segments.map { ($0.fileBackedLength > 0 ? 1 : 0) + ($0.mapLength > $0.fileBackedLength ? 1 : 0) }
        return 4 + mappings.reduce(0, +)
    }

    /// Every object's spare code in process `pid` (`SpareCode`), as address ranges.
    static func spareCode(of pid: Int32) throws -> [Range<UInt64>] {
        let process = ProcessID(pid)
        let cache = ObjectCache()
        return LoadedObjects.of(pid: process, mappings: try ProcFS.maps(of: process), cache: cache).compactMap { object in
            guard let first = object.mappings.first, let spare = cache.identity(of: first, path: object.readablePath)?.spareCode else {
                return nil
            }
            let start = object.loadBias &+ spare.virtualAddress
            return start..<(start + spare.length)
        }
    }

    @Test func load_runsItsCallsAsOneProgramAndLeavesNoDescriptorNorCodeBehind() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let before = try Self.descriptors(victim.pid)
        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(report.injectedSystemCalls == (try Self.oneStopCalls(target)), "the reservation, the program's calls and its ending")
        #expect(report.injectionStops == 1, "the program, in spare code, made the reservation too: one stop")
        #expect(try Self.descriptors(victim.pid) == before, "the program closed what it opened")

        // The marker page holds the seal record and nothing else: no path, program or stub (with
        // the registers the thread had) is left in the process.
        let pid = ProcessID(victim.pid)
        let memory = try ProcessMemory(pid: pid)
        let image = try #require(PatchImageMarker.images(in: try ProcFS.maps(of: pid), memory: memory).first)
        let page = try memory.read(at: image.base - PatchImageMarker.pageSize, count: Int(PatchImageMarker.pageSize))
        let record = PatchImageMarker.encode(image)
        #expect(Array(page.prefix(record.count)) == record)
        #expect(page.dropFirst(record.count).allSatisfy { $0 == 0 }, "the rest of the marker page is wiped")
        let spares = try Self.spareCode(of: victim.pid)
        #expect(!spares.isEmpty)
        for spare in spares {
            let bytes = try memory.read(at: spare.lowerBound, count: Int(spare.upperBound - spare.lowerBound))
            #expect(bytes.allSatisfy { $0 == 0 }, "the spare code the program ran in holds the file's zeros again")
        }
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func load_whenNoObjectsSpareCodeIsZeros_reservesAloneFirstAndLeavesThoseBytesAsTheyWere() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        let memory = try ProcessMemory(pid: ProcessID(victim.pid))
        let spares = try Self.spareCode(of: victim.pid)
        try #require(!spares.isEmpty)
        // Code of another tool (here one `ret`) at the end of every object's spare code.
        for spare in spares { try memory.write([0xC3], at: spare.upperBound - 1) }
        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(report.injectionStops == 3, "the reservation's entry and exit stops, and the program's")
        for spare in spares { #expect(try memory.read(at: spare.upperBound - 1, count: 1) == [0xC3]) }
        // The path, the program and the stub lay in the marker page: wiped, the record alone left.
        let pid = ProcessID(victim.pid)
        let image = try #require(PatchImageMarker.images(in: try ProcFS.maps(of: pid), memory: memory).first)
        let page = try memory.read(at: image.base - PatchImageMarker.pageSize, count: Int(PatchImageMarker.pageSize))
        let record = PatchImageMarker.encode(image)
        #expect(Array(page.prefix(record.count)) == record)
        #expect(page.dropFirst(record.count).allSatisfy { $0 == 0 }, "the rest of the marker page is wiped")
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func spareCodeArea_whenTheMapsItWasChosenFromNoLongerHoldThatFile_isNotUsed() throws {
        // The maps of one process stand for another's read before a library was unloaded and the
        // address space reused: the kernel's answer for the process itself must decide.
        let first = try Live.startVictim(["--threads", "1"])
        defer { first.stop() }
        let second = try Live.startVictim(["--threads", "1"])
        defer { second.stop() }
        let cache = ObjectCache()
        let stale = LoadedObjects.of(pid: ProcessID(first.pid), mappings: try ProcFS.maps(of: ProcessID(first.pid)), cache: cache)
        let current = LoadedObjects.of(pid: ProcessID(second.pid), mappings: try ProcFS.maps(of: ProcessID(second.pid)), cache: cache)
        try #require(Set(stale.map(\.loadBias)).isDisjoint(with: current.map(\.loadBias)), "address space layouts differ (ASLR)")
        let memory = try ProcessMemory(pid: ProcessID(second.pid))
        let target = try #require(stale.first)
        #expect(PatchLoader.spareProgramArea(in: ProcessID(second.pid), objects: stale, target: target, cache: cache,
                                             memory: memory, bytes: 512) == nil)
        let own = try #require(current.first)
        let area = PatchLoader.spareProgramArea(in: ProcessID(second.pid), objects: current, target: own, cache: cache,
                                                memory: memory, bytes: 512)
        #expect(area != nil, "its own maps give an area")
    }

    @Test func load_whenAMappingFailsInTheMiddleOfTheProgram_namesTheCallAndItsErrnoAndUndoesTheLoad() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2"])
        defer { victim.stop() }
        guard let detail = try Self.loadFailingOnTheDataLimit(victim, target) else { return }
        // The writable segment is mapped after openat and the read-only and code segments.
        #expect(detail.contains("mmap(PROT_READ|PROT_WRITE)") && detail.contains("ENOMEM"), "\(detail)")
        #expect(try Live.behaviour(victim) == Live.original)

        let retried = try Live.reconcile(victim, desired: target, known: [target])
        #expect(retried.outcome == .applied, "\(retried.outcome)")
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func load_whenTheProcessCatchesEveryQuietSignal_stopsAtEachCallAndSendsNoSignal() throws {
        // Handlers for SIGURG, SIGWINCH and SIGCHLD: none can end the program (a handler would run
        // if the agent died at its stop), so each call stops the thread instead.
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2", "--catch-quiet-signals"])
        defer { victim.stop() }
        let status = try ProcFS.status(of: ProcessID(victim.pid), thread: ThreadID(victim.pid))
        #expect(PatchLoader.stoppingSignals(status: status).isEmpty, "no signal can end the program here")
        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")
        #expect(report.injectedSystemCalls == (try Self.oneStopCalls(target)), "the same calls, ending on one that changes nothing")
        #expect(try Live.behaviour(victim) == Live.level1)
        let line = try victim.freshLine()
        #expect(line.hasSuffix("signals=0"), "no handler ran: \(line)")
    }

    @Test func load_whenAMappingFailsWhileStoppingAtEachCall_undoesTheLoadToo() throws {
        // The failure path's munmap follows the program's ending: stopping at each call, the
        // thread must be parked after that ending, or the munmap is skipped and the reservation
        // (path, program, stub) stays in the process.
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2", "--catch-quiet-signals"])
        defer { victim.stop() }
        guard let detail = try Self.loadFailingOnTheDataLimit(victim, target) else { return }
        #expect(detail.contains("ENOMEM"), "\(detail)")
        let retried = try Live.reconcile(victim, desired: target, known: [target])
        #expect(retried.outcome == .applied, "\(retried.outcome)")
        #expect(try Live.behaviour(victim) == Live.level1)
        let line = try victim.freshLine()
        #expect(line.hasSuffix("signals=0"), "no handler ran: \(line)")
    }

    @Test func load_whenSeccompWouldKillOnTgkill_neverSendsTheSignalAndStillLoads() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let victim = try Live.startVictim(["--threads", "2", "--seccomp", "kill-tgkill"])
        defer { victim.stop() }
        let report = try Live.reconcile(victim, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")
        Thread.sleep(forTimeInterval: 0.05)
        #expect(victim.isAlive, "wait status \(String(describing: victim.waitStatus))")
        #expect(try Live.behaviour(victim) == Live.level1)
    }

    @Test func load_whenSeccompDeniesOnlyTheProgramsFileMappings_refusesBeforeInjectingAnything() throws {
        // The reservation (anonymous) would pass; the file-backed mmaps the program makes would not.
        let target = try Live.victimHotpatches().level1.targets[0]
        let name = PatchLoader.name(of: target.patchObjectPath)
        let victim = try Live.startVictim(["--threads", "2", "--seccomp", "deny-file-mmap-errno"])
        defer { victim.stop() }
        let mappings = Self.loadMappings(victim.pid, name: name)
        let report = try Live.reconcile(victim, desired: target, known: [target])
        guard case let .unpatchable(.seccompDenies(call, number)) = report.outcome else {
            Issue.record("\(report.outcome)")
            return
        }
        #expect(call.hasPrefix("mmap(PROT_"), "\(call)")
        #expect(number == EPERM)
        #expect(report.injectedSystemCalls == 0)
        #expect(Self.loadMappings(victim.pid, name: name) == mappings)
        #expect(try Live.behaviour(victim) == Live.original)
    }
}

/// The agent killed while an injected program holds the thread: before the thread runs it, while
/// it runs, and at its one stop. The tracer thread exits without detaching, and the kernel detaches
/// its tracees exactly as it does when a tracer process dies.
extension LivePatchTests {
    /// Where a doomed tracer abandons the program.
    private enum Abandon {
        /// The registers lead into the program, the mask is set, and the thread has not run.
        case beforeItRuns
        /// The thread was resumed into the program and the tracer exits at once.
        case whileItRuns
        /// At the stop the program's signal gives once it is done.
        case atItsStop
    }

    /// Seizes `tid` (every thread of `pid`, as a load does), maps an r-x page with one call, writes
    /// a path, a program (open it, close it) and the stub there, and runs the program up to `point`;
    /// the tracer never restores the thread.
    private static func runProgramAndAbandon(pid: ProcessID, tid: ThreadID, at point: Abandon, inSpareCode: Bool) throws {
        let deadline = Monotonic.now.adding(microseconds: 2_000_000)
        let traced = try TracedProcess.stopAllThreads(pid: pid, deadline: deadline)
        let memory = try ProcessMemory(pid: pid)
        let mappings = try ProcFS.maps(of: pid)
        let found = PatchLoader.syscallInstruction(pid: pid, mappings: mappings, memory: memory, cache: ObjectCache())
        let instruction = try #require(found)
        let injector = try SystemCallInjector(traced: traced, tid: tid, instruction: instruction)
        let calls = HostArchitecture.systemCalls
        let area: ProgramArea
        if inSpareCode {
            let cache = ObjectCache()
            let objects = LoadedObjects.of(pid: pid, mappings: mappings, cache: cache)
            let first = try #require(objects.first)
            let found = PatchLoader.spareProgramArea(in: pid, objects: objects, target: first, cache: cache, memory: memory, bytes: 1024)
            area = try #require(found)
        } else {
            let page = try injector.call(calls.mmap, [0, 4096, 5, 0x22, UInt64.max, 0], deadline: deadline)
            #expect(page > 0)
            area = ProgramArea(start: UInt64(page), stub: UInt64(page) + PatchImageMarker.stubOffset)
        }
        let status = try ProcFS.status(of: pid, thread: tid)
        let stop = SystemCallInjector.ProgramStop.signal(SIGURG, processID: UInt64(try #require(status.namespaceProcessID)),
                                                         threadID: UInt64(try #require(status.namespaceThreadID)))
        let program = InjectionProgram(calls: [
            .init(number: calls.openat, arguments: [.value(UInt64(bitPattern: -100)), .value(area.start),
                                                    .value(UInt64(UInt32(bitPattern: O_RDONLY | O_CLOEXEC))), .value(0)],
                  expectation: .descriptor),
        ], cleanups: [.init(number: calls.close, arguments: [.resultOf(0)], guardArgument: 0)], ending: stop.ending)
        let programAddress = (area.stub - UInt64(HostArchitecture.injectionProgram(program, stubDistance: 0).bytes.count)) & ~15
        let encoded = HostArchitecture.injectionProgram(program, stubDistance: Int(area.stub - programAddress))
        try memory.write(Array("/dev/null".utf8) + [0], at: area.start)
        try memory.write(encoded.bytes, at: programAddress)
        try memory.write(injector.stub, at: area.stub)
        injector.useStub(at: area.stub)
        switch point {
        case .atItsStop:
            let results = try injector.run(encoded, at: programAddress, stop: stop, memory: memory, deadline: deadline)
            #expect((results[0] ?? -1) >= 0 && results[1] == 0, "opened and closed: \(results)")
        case .beforeItRuns, .whileItRuns:
            var registers = try Ptrace.registers(tid)
            registers.prepareSystemCall(number: 0, arguments: [], at: programAddress)
            registers.stackPointer = HostArchitecture.injectionStackPointer(below: registers.stackPointer)
            try Ptrace.setRegisters(tid, registers)
            try Ptrace.setSignalMask(tid, ~(UInt64(1) << UInt64(SIGURG - 1)) & ~(UInt64(1) << UInt64(SIGSEGV - 1)))
            if point == .whileItRuns { try Ptrace.resume(tid) }
        }
        _ = traced  // never released: the tracer's death detaches it
    }

    /// Runs `body` on a fresh tracer thread, which then exits with whatever it still holds.
    private static func onDoomedTracer(_ body: @escaping () throws -> Void) throws {
        let tracer = TracerThread(name: "doomed-tracer")
        try tracer.perform(body)
        tracer.shutdown()
        Thread.sleep(forTimeInterval: 0.2)
    }

    /// `field` (SigBlk, SigPnd, …) of a thread's status.
    private static func statusField(_ field: String, _ pid: Int32, _ tid: Int32) throws -> String {
        let status = try String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)
        return status.split(separator: "\n").first { $0.hasPrefix(field + ":") }.map(String.init) ?? ""
    }

    private static func expectSurvives(abandoning point: Abandon, inSpareCode: Bool = false) throws {
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        let worker = try #require(try ProcFS.threadIDs(of: ProcessID(victim.pid)).first { $0.rawValue != victim.pid }).rawValue
        Thread.sleep(forTimeInterval: 0.05)  // the worker sets its own mask once it runs
        let masks = (try statusField("SigBlk", victim.pid, victim.pid), try statusField("SigBlk", victim.pid, worker))
        let held = try descriptors(victim.pid)
        for round in 0..<8 {
            let tid = round % 2 == 0 ? victim.pid : worker  // the sleeping leader, the busy worker
            try onDoomedTracer { try runProgramAndAbandon(pid: ProcessID(victim.pid), tid: ThreadID(tid), at: point, inSpareCode: inSpareCode) }
            if inSpareCode {
                // What an agent that died leaves in spare code keeps a later load out of it: the
                // next round needs it clean again.
                let memory = try ProcessMemory(pid: ProcessID(victim.pid))
                for spare in try spareCode(of: victim.pid) {
                    try memory.write([UInt8](repeating: 0, count: Int(spare.upperBound - spare.lowerBound)), at: spare.lowerBound)
                }
            }
            #expect(victim.isAlive, "round \(round): wait status \(String(describing: victim.waitStatus))")
            for thread in try ProcFS.threadIDs(of: ProcessID(victim.pid)) {
                let status = try ProcFS.status(of: ProcessID(victim.pid), thread: thread)
                #expect(status.tracer == nil && status.state != "t", "round \(round): thread \(thread) is \(status.state)")
            }
            let urg = UInt64(1) << UInt64(SIGURG - 1)
            for field in ["SigPnd", "ShdPnd"] {
                let pending = UInt64(try statusField(field, victim.pid, tid).split(separator: "\t").last ?? "", radix: 16) ?? 0
                #expect(pending & urg == 0, "round \(round): the program's SIGURG is not left pending (\(field))")
            }
        }
        #expect(try statusField("SigBlk", victim.pid, victim.pid) == masks.0)
        #expect(try statusField("SigBlk", victim.pid, worker) == masks.1)
        #expect(try descriptors(victim.pid) == held, "each program closed what it opened")
        #expect(try Live.behaviour(victim) == Live.original)
        let first = try victim.freshLine()
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try victim.freshLine() != first, "the process carries on")
    }

    @Test func program_whenTracerDiesBeforeTheThreadRunsIt_threadRunsItAndResumesWithItsOwnState() throws {
        try Self.expectSurvives(abandoning: .beforeItRuns)
    }

    @Test func program_whenTracerDiesWhileTheThreadRunsIt_threadFinishesItAndResumesWithItsOwnState() throws {
        try Self.expectSurvives(abandoning: .whileItRuns)
    }

    @Test func program_whenTracerDiesAtItsOneStop_signalIsDroppedAndThreadResumesWithItsOwnState() throws {
        try Self.expectSurvives(abandoning: .atItsStop)
    }

    @Test func program_inSpareCode_whenTracerDiesBeforeWhileOrAtItsStop_threadResumesWithItsOwnState() throws {
        for point in [Abandon.beforeItRuns, .whileItRuns, .atItsStop] {
            try Self.expectSurvives(abandoning: point, inSpareCode: true)
        }
    }
}

/// Injected code that faults (its page not executable, as when another process sharing the memory
/// took it away): the fault is the injection's, never the process's.
extension LivePatchTests {
    @Test func program_whenItsCodeFaults_endsTheRunAndTheProcessNeverGetsTheSignal() throws {
        let victim = try Live.startVictim(["--threads", "1"])
        defer { victim.stop() }
        let pid = ProcessID(victim.pid)
        let calls = HostArchitecture.systemCalls
        for stop in ["signal", "system call stops"] {
            let deadline = Monotonic.now.adding(microseconds: 2_000_000)
            let traced = try TracedProcess.stopAllThreads(pid: pid, deadline: deadline)
            let memory = try ProcessMemory(pid: pid)
            let found = PatchLoader.syscallInstruction(pid: pid, mappings: try ProcFS.maps(of: pid), memory: memory, cache: ObjectCache())
            let injector = try SystemCallInjector(traced: traced, tid: ThreadID(victim.pid), instruction: try #require(found))
            // A readable page that is not executable: the program's first instruction faults.
            let page = UInt64(try injector.call(calls.mmap, [0, 4096, 1, 0x22, UInt64.max, 0], deadline: deadline))
            let status = try ProcFS.status(of: pid, thread: ThreadID(victim.pid))
            let programStop: SystemCallInjector.ProgramStop = stop == "signal"
                ? .signal(SIGURG, processID: UInt64(try #require(status.namespaceProcessID)),
                          threadID: UInt64(try #require(status.namespaceThreadID)))
                : .systemCallStops
            let program = InjectionProgram(calls: [.init(number: calls.close, arguments: [.value(UInt64.max)], expectation: .descriptor)],
                                           cleanups: [], ending: programStop.ending)
            let stub = page + PatchImageMarker.stubOffset
            let programAddress = page + 0x800
            let encoded = HostArchitecture.injectionProgram(program, stubDistance: Int(stub - programAddress))
            try memory.write(encoded.bytes, at: programAddress)
            try memory.write(injector.stub, at: stub)
            injector.useStub(at: stub)
            #expect {
                _ = try injector.run(encoded, at: programAddress, stop: programStop, memory: memory, deadline: deadline)
            } throws: { error in
                guard case let .faulted(signal, address)? = error as? InjectionFailure else { return false }
                return signal == SIGSEGV && address == programAddress
            }
            #expect(throws: InjectionFailure.self, "no call runs after the fault") {
                _ = try injector.call(calls.close, [UInt64.max], deadline: deadline)
            }
            try injector.restore()
            traced.release()
            Thread.sleep(forTimeInterval: 0.1)
            #expect(victim.isAlive, "\(stop): wait status \(String(describing: victim.waitStatus))")
        }
        #expect(try Live.behaviour(victim) == Live.original)
        let first = try victim.freshLine()
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try victim.freshLine() != first, "the process carries on")
    }
}
