import Architecture
import Artifact
import CPtrace
import Glibc
import LinuxSystem

/// Why loading a patch object into a process did not happen.
enum LoadFailure: Error {
    /// Cannot work until something changes.
    case unpatchable(UnpatchableReason)
    /// Try again later.
    case busy(String)
}

/// Maps a patch object into a live process without running any of its code: system calls injected
/// into one thread reserve room near the target, open (or, when the process cannot see our file,
/// recreate as a memfd) and map each segment with its final protections, and the agent then
/// relocates the image through /proc/PID/mem and seals it with a completion record. Every thread of
/// the process is held from before its seccomp filters are read until the last call has run. Where
/// an object the process maps has spare code (`SpareCode`), the calls run there as one program, the
/// reservation first: one stop for the whole load.
struct PatchLoader {
    private static let protRead: UInt64 = 1, protWrite: UInt64 = 2, protExec: UInt64 = 4
    private static let mapPrivate: UInt64 = 0x02, mapFixed: UInt64 = 0x10, mapAnonymous: UInt64 = 0x20
    private static let mapFixedNoReplace: UInt64 = 0x10_0000
    private static let openFlags = UInt64(UInt32(bitPattern: O_RDONLY | O_CLOEXEC))
    private static let atCurrentDirectory = UInt64(bitPattern: -100)
    /// Farthest distance kept between image and target so the short jump always reaches.
    static let nearReach = HostArchitecture.nearJumpReach
    /// Mask of the offset within a page.
    private static let pageMask = HostArchitecture.pageSize - 1

    let patch: PatchObject
    /// The local path of the verified patch object.
    let path: String
    /// Facts about mapped files, shared across processes.
    let cache: ObjectCache
    /// The file `patch` was parsed from (`ObjectCache.patchFile(at:)`).
    let file: StartFile
    /// `PatchLoader.farAreaBytes(of:path:)` of `patch` at `path`, worked out with the file's parse.
    let farAreaBytes: UInt64
    /// Its file name, which identifies the image in the process.
    var name: String { PatchLoader.name(of: path) }

    /// The file name of the patch object at `path`: the name its image has in a process (trailing
    /// slashes ignored; a path of slashes alone is its own name). Asked for every process patched.
    static func name(of path: String) -> String {
        let bytes = path.utf8
        guard let last = bytes.lastIndex(where: { $0 != UInt8(ascii: "/") }) else { return path }
        let start = bytes[..<last].lastIndex(of: UInt8(ascii: "/")).map { bytes.index(after: $0) } ?? bytes.startIndex
        return String(decoding: bytes[start...last], as: UTF8.self)
    }

    /// A page-aligned address for `length` bytes, within short-jump reach of all of `object`, in a hole
    /// of `mappings`; below the object when possible (the heap grows up after executables).
    static func nearAddress(for length: UInt64, near object: LoadedObject, mappings: [MemoryMapping]) -> UInt64? {
        let low = object.mappings.map(\.start).min() ?? 0
        let high = object.mappings.map(\.end).max() ?? 0
        let windowLow = high > nearReach ? max(high - nearReach, 0x10_0000) : 0x10_0000
        let windowHigh = min(low &+ nearReach, HostArchitecture.userAddressSpaceEnd)
        var best: (address: UInt64, distance: UInt64)?
        var previousEnd: UInt64 = 0x10_0000
        var afterHeap = false
        // Each hole ends at the next mapping's start, the last at the end of the user address space.
        for index in 0...mappings.count {
            let start = index < mappings.count ? mappings[index].start : HostArchitecture.userAddressSpaceEnd
            var gapLow = max(previousEnd, windowLow)
            if afterHeap { gapLow = max(gapLow, previousEnd &+ (1 << 30)) }
            let gapHigh = min(start, windowHigh)
            if gapHigh > gapLow, gapHigh - gapLow >= length + HostArchitecture.pageSize {
                let address = gapHigh <= low ? (gapHigh - length) & ~pageMask : (gapLow + pageMask) & ~pageMask
                let distance = address < low ? low - address : address - low
                if best == nil || distance < best!.distance { best = (address, distance) }
            }
            guard index < mappings.count else { break }
            previousEnd = max(previousEnd, mappings[index].end)
            afterHeap = mappings[index].path == "[heap]"
        }
        return best?.address
    }

    /// What a load did, and what it saw of the process while every thread was held.
    struct LoadOutcome {
        /// The sealed image.
        let image: PatchImage
        /// How many system calls were injected.
        let injected: Int
        /// How many times the injection thread stopped for them (each a round trip to the agent).
        let stops: Int
        /// The hold, every thread still stopped, when the caller asked to keep it.
        let hold: TracedProcess?
        /// The main thread's /proc/PID/task/PID/status, read with every thread held (for its seccomp
        /// mode): the process's status as the load found it. nil when only another thread's was read.
        let leaderStatus: ProcessStatus?
    }

    /// Loads the patch into `pid` and returns the sealed image, how many calls were injected and how
    /// many times the injection thread stopped for them (each a round trip to the agent).
    /// Every thread must stop within `stopWithin` microseconds; `pause` receives how long they were
    /// held (first stop to last resume of each hold, summed over the re-stops), and `holds` how many
    /// times they were all stopped (a hold taken over counts none), whatever the outcome.
    /// `requireNearFor` is a function of `target` that only the near jump can redirect, if any: with
    /// one, a process with no room near the target is refused before anything is injected.
    /// With `keepingHold` (and no `held`), a load that succeeds returns its hold still taken, every
    /// thread stopped, for the redirect to use: its pause is then the caller's to count.
    /// `atHold` runs right before each time the load stops the process (the caller raises its
    /// thread's priority there: everything before is planning that holds nothing).
    func load(into pid: ProcessID, target: LoadedObject, mappings: [MemoryMapping], requireNearFor needsNear: FunctionRedirection?,
              atHold: () -> Void = {}, resolver: inout SymbolResolver, memory: borrowing ProcessMemory, stopWithin: UInt64,
              deadline: Monotonic.Instant, holding held: TracedProcess? = nil, directory: ProcessDirectory? = nil,
              keepingHold: Bool = false,
              pause: inout UInt64?, holds: inout Int) throws(LoadFailure) -> LoadOutcome {
        let imageSize = patch.imageSize
        let total = imageSize + PatchImageMarker.pageSize
        let near = PatchLoader.nearAddress(for: total, near: target, mappings: mappings)
        if near == nil, let needsNear, let need = needsNear.nearJumpNeed {
            throw .unpatchable(.noRoomForNearJump(symbol: needsNear.symbol, address: target.loadBias &+ needsNear.offset, need: need))
        }

        // Everything that can be decided without touching the process is decided first. The words
        // that bind indirect functions and thread-locals are read while the process runs: the
        // dynamic linker wrote them when it loaded each object and does not move them (a lazy slot
        // it has not bound yet is not used).
        resolver.readProcessBindings(for: patch.requiredSymbols, target: target, memory: memory)
        let reservationHint = near ?? 0
        var writes: [RelocationWrite] = []
        if let near {
            writes = try relocate(base: near + PatchImageMarker.pageSize, resolver: &resolver)
        }
        let visible = PatchLoader.processSees(file, at: path, pid: pid)
        var content: [UInt8] = []
        if !visible { content = try parsedFileContent() }

        let unwind = try UnwindRegistration.prepare(patch: patch, objects: resolver.loadedObjects, cache: cache)
        // Every segment's mapping at the planned address: what the filters judge, what sizes the
        // spare area, and (when the image lands there, as it does but without a near address) what
        // the program runs. Built once: each carries a formatted label.
        let segmentCalls = PatchLoader.segmentMappings(of: patch, base: reservationHint + PatchImageMarker.pageSize, fd: 3)

        // Every thread is held for the whole load, not only the one the calls run in: a thread left
        // running could install a seccomp filter (its own, or with SECCOMP_FILTER_FLAG_TSYNC one that
        // reaches the held thread too) between the check of the filters and an injected call, and
        // the call the check let through would kill the process. Held, none can.
        // A hold taken over from the exec gate (`held`) is used as it is, its other threads
        // stopped too, and never released here.
        func holdEveryThread() throws(LoadFailure) -> TracedProcess {
            atHold()
            let stopDeadline = min(deadline, Monotonic.now.adding(microseconds: stopWithin))
            if let held {
                do { try held.holdRemainingThreads(deadline: stopDeadline) } catch { throw PatchLoader.failure(error) }
                return held
            }
            do {
                let traced = try TracedProcess.stopAllThreads(pid: pid, deadline: stopDeadline, directory: directory)
                holds += 1
                return traced
            } catch {
                throw PatchLoader.failure(error)
            }
        }
        // Each hold, first stop to last resume, counts towards the load's pause.
        func release(_ traced: TracedProcess) {
            guard traced !== held else { return }
            let first = traced.firstStop
            traced.release()
            if let first { pause = (pause ?? 0) + Monotonic.now.microseconds(since: first) }
        }
        // The spare area's size is planned before the hold (it encodes the largest program).
        let spareBytes = near.map { areaBytes(near: $0, total: total, segments: segmentCalls) }
        var traced = try holdEveryThread()
        // With every thread held, spare code of an object the process maps (the zeros after an
        // executable segment's end, in its last page) can take the stub and a program that makes
        // the reservation as its first call: the whole load then stops the thread once, and at no
        // moment does the thread hold our registers without a stub to put it back. Without such
        // room (or a kernel that can confirm it, or a near address), the reservation runs alone first.
        let spare: ProgramArea? = spareBytes.flatMap { bytes in
            PatchLoader.spareProgramArea(in: pid, objects: resolver.loadedObjects, target: target, cache: cache, memory: memory,
                                         bytes: bytes, directory: directory)
        }
        // The calls run on the stub's system call instruction in spare code; else the first runs
        // on one of the process's own (the vDSO's), looked for only then.
        let instruction: UInt64
        if let spare {
            instruction = spare.stub
        } else if let found = PatchLoader.syscallInstruction(pid: pid, mappings: mappings, memory: memory, cache: cache) {
            instruction = found
        } else {
            release(traced)
            throw .unpatchable(.systemFailure(detail: "no system call instruction found in process \(pid)'s code"))
        }
        // The first call alone is safest in place of a system call a thread was interrupted in (see
        // below), and with every thread stopped any thread asleep in one will do, the leader first.
        // When none is, the process is let go and stopped again a few times (2 ms apart) to catch
        // one asleep, before the call runs on the vDSO's system call instruction instead.
        let leaderThread = pid.mainThread
        var sleeper = spare == nil ? PatchLoader.threadAsleepInSystemCall(traced, leader: leaderThread, memory: memory) : nil
        var tries = 0
        while spare == nil, sleeper == nil, tries < 5, held == nil {
            tries += 1
            release(traced)
            Monotonic.sleep(microseconds: 2_000)
            traced = try holdEveryThread()
            sleeper = PatchLoader.threadAsleepInSystemCall(traced, leader: leaderThread, memory: memory)
        }
        var handedOver = false
        defer { if !handedOver { release(traced) } }
        let stoppedThreads = traced.stoppedThreadIDs
        guard let leader = stoppedThreads.contains(leaderThread) ? leaderThread : stoppedThreads.first else {
            throw .unpatchable(.processGone)
        }
        let handsOverItsHold = keepingHold && held == nil

        let reserveFlags = PatchLoader.mapPrivate | PatchLoader.mapAnonymous | (near == nil ? 0 : PatchLoader.mapFixedNoReplace)
        // Readable and executable from the start: the marker page will hold the injection stub and
        // program. A new r-x anonymous mapping is what MemoryDenyWriteExecute and PR_SET_MDWE still allow.
        let calls = HostArchitecture.systemCalls
        let reserve = PlannedSystemCall(label: "mmap(anonymous, PROT_READ|PROT_EXEC)", number: calls.mmap,
                                        arguments: [reservationHint, total, PatchLoader.protRead | PatchLoader.protExec,
                                                    reserveFlags, UInt64.max, 0])
        // Where the path (or memfd name) and the stub will lie: known now in spare code, at the
        // hint in a marker page.
        let nameHint = spare?.start ?? reservationHint
        let stubHint = spare?.stub ?? reservationHint + PatchImageMarker.stubOffset
        // What the stub runs if the agent dies mid-load: put the thread's own signal mask back.
        let restoreMask = PlannedSystemCall(label: "rt_sigprocmask(SIG_SETMASK)", number: calls.rtSigprocmask,
                                            arguments: [2, stubHint, 0, 8])
        let open = PlannedSystemCall(label: "openat(\(path))", number: calls.openat,
                                     arguments: [PatchLoader.atCurrentDirectory, nameHint, PatchLoader.openFlags, 0])
        let memfd = PlannedSystemCall(label: "memfd_create", number: calls.memfdCreate, arguments: [nameHint, 1])
        let close = PlannedSystemCall(label: "close", number: calls.close, arguments: [3])
        let unmap = PlannedSystemCall(label: "munmap", number: calls.munmap, arguments: [reservationHint, total])
        let quietEnding = PlannedSystemCall(SystemCallInjector.ProgramStop.systemCallStops.ending,
                                            label: "rt_sigprocmask(SIG_BLOCK, NULL)")
        // Whether the memfd path is needed under `gate`; throws the reason when the calls cannot all run.
        func needsMemfd(under gate: SeccompGate) throws(UnpatchableReason) -> Bool {
            for call in [reserve, restoreMask, close, unmap] + segmentCalls { try gate.check(call) }
            let useMemfd = !visible || !gate.allows(open)
            if useMemfd {
                do throws(UnpatchableReason) { try gate.check(memfd) } catch {
                    // Report the call we wanted first when both are refused.
                    if visible { try gate.check(open) }
                    throw error
                }
            }
            return useMemfd
        }

        // The calls are judged by the filters of the thread they run in, read only now that every
        // thread is held: what they say stays true until the release. The sleeping thread chosen
        // above may have filters of its own (installed without TSYNC): if they refuse, the
        // leader's are asked, and the calls run in the leader. In spare code any thread can run
        // them: the leader, else (its own filters refusing) the first other thread.
        let second = spare == nil ? sleeper.flatMap { $0 == leader ? nil : leader } : stoppedThreads.first { $0 != leader }
        var chosen: (tid: ThreadID, gate: SeccompGate, useMemfd: Bool, signals: [SystemCallInjector.ProgramStop])?
        var refusal: UnpatchableReason?
        // The main thread's status is the process's as it is held: the caller takes it as such.
        var leaderStatus: ProcessStatus?
        candidates: for candidate in [sleeper ?? leader] + (second.map { [$0] } ?? []) {
            do throws(UnpatchableReason) {
                let status = try SeccompGate.status(of: pid, thread: candidate, in: directory)
                if candidate == leaderThread { leaderStatus = status }
                // In spare code the calls run there, and the stub's instruction stands for them all.
                let gate = try SeccompGate(thread: candidate, status: status, instruction: instruction)
                let useMemfd = try needsMemfd(under: gate)
                let signals = PatchLoader.stoppingSignals(status: status).filter { gate.allows(PlannedSystemCall($0.ending, label: "tgkill")) }
                // Without a signal to stop on, the program's calls stop one by one, and end on a
                // call that must pass too.
                if signals.isEmpty { try gate.check(quietEnding) }
                chosen = (candidate, gate, useMemfd, signals)
                break candidates
            } catch {
                if error == .processGone { throw .unpatchable(error) }
                refusal = refusal ?? error
            }
        }
        guard let (tid, gate, memfdNeeded, signals) = chosen else { throw .unpatchable(refusal ?? .processGone) }
        var useMemfd = memfdNeeded

        if useMemfd && content.isEmpty { content = try parsedFileContent() }
        // Spare code goes back to the file's zeros once the thread is back to its own registers
        // (this runs after the injector's restore below) and before the threads are let go.
        var spareWritten = 0
        defer {
            if let spare, spareWritten > 0 {
                _ = try? memory.write([UInt8](repeating: 0, count: spareWritten), at: spare.start)
            }
        }
        let injector: SystemCallInjector
        do { injector = try SystemCallInjector(traced: traced, tid: tid, instruction: instruction) } catch {
            throw .unpatchable(.systemFailure(detail: "\(error)"))
        }
        defer { try? injector.restore() }
        // The first signal the thread does not block itself: with the agent gone, the kernel then
        // discards it (ignored, not blocked) rather than leave it pending. Else a stop per call.
        let programStop = signals.first { signal in
            guard case let .signal(number, _, _) = signal else { return false }
            return injector.signalMask & (UInt64(1) << UInt64(number - 1)) == 0
        } ?? .systemCallStops
        if programStop == .systemCallStops {
            do { try gate.check(quietEnding) } catch { throw .unpatchable(error) }
        }
        // A thread interrupted in a system call (the usual leader, asleep) runs the first call in
        // place of that call, on its own instruction: if the agent died during it, the thread would
        // return into its own code rather than run on past the vDSO's instruction with our
        // registers. Only the native system call instruction qualifies (not a compatibility
        // entry), and only if the filters allow the call there.
        if spare == nil, let own = injector.restartedSystemCall, PatchLoader.isSystemCallInstruction(at: own, memory: memory),
           gate.at(own).allows(reserve) {
            injector.runFirstCallInPlaceOfRestartedCall()
        }
        func inject(_ call: PlannedSystemCall, removingStub: Bool = false) throws(LoadFailure) -> Int64 {
            let outcome = Result<Int64, any Error> {
                removingStub ? try injector.callRemovingStub(call.number, call.arguments, deadline: deadline)
                    : try injector.call(call.number, call.arguments, deadline: deadline)
            }
            switch outcome {
            case let .success(result):
                return result
            case let .failure(error):
                guard let failure = error as? InjectionFailure else {
                    throw .unpatchable(.systemFailure(detail: "injected \(call.label): \(error)"))
                }
                if case let .stop(stop) = failure { throw PatchLoader.failure(stop) }
                throw .unpatchable(.systemFailure(detail: "injected \(call.label) left the thread at an unexpected address"))
            }
        }
        func mapFailure(_ label: String, _ result: Int64) -> LoadFailure {
            .unpatchable(.cannotMapPatchObject(detail: "\(label) in process \(pid) failed with \(SystemError.errnoText(Int32(-result)))"))
        }

        /// One call of a program, and its label for messages.
        struct Step {
            let label: String
            let call: InjectionProgram.Call
        }
        // In spare code the reservation is the first program's first call (`leading`); else it
        // runs alone now and the programs go into its marker page.
        /// What a reservation's result means when it is an errno.
        func reservationFailure(_ result: Int64) -> LoadFailure? {
            guard result < 0 && result > -4096 else { return nil }
            if -result == Int64(EEXIST) { return .busy("the chosen address range was taken meanwhile") }
            return mapFailure(reserve.label, result)
        }
        let area: ProgramArea
        var reservation: UInt64
        var reserved = false
        var leading: [InjectionProgram.Call] = []
        if let spare, let near {
            area = spare
            reservation = near
            leading = [.init(number: reserve.number, arguments: reserve.arguments.map { .value($0) }, expectation: .value(near))]
        } else {
            let reservationResult = try inject(reserve)
            if let failure = reservationFailure(reservationResult) { throw failure }
            reservation = UInt64(bitPattern: reservationResult)
            reserved = true
            area = ProgramArea(start: reservation, stub: reservation + PatchImageMarker.stubOffset)
        }
        var mapped = false
        defer {
            if reserved && !mapped {
                _ = try? inject(PlannedSystemCall(label: "munmap", number: calls.munmap, arguments: [reservation, total]),
                                removingStub: true)
            }
        }
        /// The reservation's result, when the program just run made it: anything but the planned
        /// address ends the load (a range taken meanwhile, or a kernel that ignores
        /// MAP_FIXED_NOREPLACE and placed it elsewhere, which the failure path unmaps).
        func checkReservation(_ result: Int64?) throws(LoadFailure) {
            let result = result ?? -Int64(EIO)
            if result == Int64(bitPattern: reservation) {
                reserved = true
                return
            }
            if let failure = reservationFailure(result) { throw failure }
            let planned = reservation
            reservation = UInt64(bitPattern: result)
            reserved = true
            throw .busy("the reservation landed at 0x\(String(reservation, radix: 16)), not at 0x\(String(planned, radix: 16))")
        }
        let base = reservation + PatchImageMarker.pageSize
        if near == nil { writes = try relocate(base: base, resolver: &resolver) }

        // The rest runs as programs (`InjectionProgram`) written into the area, after the path (or
        // memfd name) and before the stub, which every program ends on: from here on the thread
        // holds only registers that lead through the stub, which would resume it as it was if the
        // agent died (in a marker page, the seal record and the wipe at the end overwrite all
        // three; in spare code, zeros).
        let stub = injector.stub
        var stubWritten = false
        var text = useMemfd ? "hotpatch:" + name : path
        /// Runs `steps`, then `cleanups`, as one program (after the reservation when it is still to
        /// be made), and returns every result of `steps` and `cleanups` (nil where a call did not run).
        func runProgram(_ steps: [Step], cleanups: [InjectionProgram.Cleanup]) throws(LoadFailure) -> [Int64?] {
            let program = InjectionProgram(calls: steps.map(\.call), cleanups: cleanups, ending: programStop.ending).prefixed(by: leading)
            let stubOffset = area.stub - area.start
            let provisional = HostArchitecture.injectionProgram(program, stubDistance: 0)
            let name = Array(text.utf8) + [0]
            guard let offset = area.programOffset(programBytes: provisional.bytes.count, nameBytes: name.count) else {
                throw .unpatchable(.patchObjectRejected(detail: "path \(path) is too long (\(text.utf8.count) bytes)"))
            }
            let encoded = HostArchitecture.injectionProgram(provisional, stubDistance: Int(stubOffset - offset))
            // The name, the program and (the first time) the stub, in one write.
            var page = name + [UInt8](repeating: 0, count: Int(offset) - name.count) + encoded.bytes
            if !stubWritten {
                page += [UInt8](repeating: 0, count: Int(stubOffset - offset) - encoded.bytes.count) + stub
            }
            if spare != nil { spareWritten = max(spareWritten, page.count) }
            do { try memory.write(page, at: area.start) } catch {
                throw .unpatchable(.systemFailure(detail: "writing the injected program into process \(pid): \(error)"))
            }
            if !stubWritten {
                injector.useStub(at: area.stub)
                stubWritten = true
            }
            var results: [Int64?]
            do {
                results = try injector.run(encoded, at: area.start + offset, stop: programStop, memory: memory, deadline: deadline)
            } catch let failure as InjectionFailure {
                switch failure {
                case let .stop(stop):
                    throw PatchLoader.failure(stop)
                case let .faulted(signal, address):
                    throw .unpatchable(.systemFailure(detail: "the injected program faulted in process \(pid) (signal \(signal), \(String(cString: strsignal(signal))), at 0x\(String(address, radix: 16))); the signal was not delivered and the thread was put back"))
                case .unexpectedLocation:
                    throw .unpatchable(.systemFailure(detail: "the injected program left the thread at an unexpected address"))
                }
            } catch {
                throw .unpatchable(.systemFailure(detail: "running the injected program in process \(pid): \(error)"))
            }
            if !leading.isEmpty {
                leading = []
                try checkReservation(results.first ?? nil)
                results.removeFirst()
            }
            return results
        }
        /// The first step whose result is not the expected one, as a failure naming it.
        func firstFailure(of steps: [Step], in results: [Int64?]) -> LoadFailure? {
            for (step, result) in zip(steps, results) {
                guard let result else { return nil }
                switch step.call.expectation {
                case .descriptor where result < 0:
                    return mapFailure(step.label, result)
                case let .value(expected) where UInt64(bitPattern: result) != expected:
                    if result < 0 && result > -4096 { return mapFailure(step.label, result) }
                    return .unpatchable(.cannotMapPatchObject(detail: "\(step.label) in process \(pid) placed the segment at 0x\(String(UInt64(bitPattern: result), radix: 16)) instead of 0x\(String(expected, radix: 16))"))
                default:
                    continue
                }
            }
            return nil
        }
        /// The failure of a cleanup's close, reported as such: a descriptor the process may still hold.
        func closeFailure(_ result: Int64??) -> LoadFailure? {
            guard let ran = result, let result = ran, result < 0 else { return nil }
            return mapFailure("close", result)
        }
        func mappingSteps(fd: InjectionProgram.Argument) -> [Step] {
            let segments = base == reservationHint + PatchImageMarker.pageSize ? segmentCalls : PatchLoader.segmentMappings(of: patch, base: base, fd: 0)
            return segments.map { planned in
                var arguments = planned.arguments.map { InjectionProgram.Argument.value($0) }
                if planned.arguments[3] & PatchLoader.mapAnonymous == 0 { arguments[4] = fd }
                return Step(label: planned.label, call: .init(number: planned.number, arguments: arguments, expectation: .value(planned.arguments[0])))
            }
        }

        var mapError: LoadFailure?
        var mappedFromFile = false
        if !useMemfd {
            // openat, the mappings from its descriptor, and its close, in one program.
            let openStep = Step(label: open.label, call: .init(number: open.number, arguments: [
                .value(PatchLoader.atCurrentDirectory), .value(area.start), .value(PatchLoader.openFlags), .value(0)], expectation: .descriptor))
            let steps = [openStep] + mappingSteps(fd: .resultOf(0))
            let results = try runProgram(steps, cleanups: [.init(number: calls.close, arguments: [.resultOf(0)], guardArgument: 0)])
            if let fd = results[0], fd < 0 {
                // The process may not see or may not read our file (mount namespace, uid): copy it.
                content = try parsedFileContent()
                useMemfd = true
                text = "hotpatch:" + name
            } else {
                mappedFromFile = true
                mapError = firstFailure(of: steps, in: results) ?? closeFailure(results.last)
            }
        }
        if useMemfd && !mappedFromFile {
            let create = Step(label: memfd.label, call: .init(number: memfd.number, arguments: [.value(area.start), .value(1)],
                                                               expectation: .descriptor))
            let created = try runProgram([create], cleanups: [])
            if let failure = firstFailure(of: [create], in: created) { throw failure }
            guard let fd = created[0] else { throw mapFailure(memfd.label, -Int64(EIO)) }
            let closeMemfd = InjectionProgram.Cleanup(number: calls.close, arguments: [.value(UInt64(fd))], guardArgument: 0)
            do {
                let copy = try OpenFile(path: "/proc/\(pid)/fd/\(fd)", flags: O_WRONLY)
                try copy.write(content, at: 0)
            } catch {
                _ = try? runProgram([], cleanups: [closeMemfd])
                throw .unpatchable(.cannotMapPatchObject(detail: "filling memfd in process \(pid): \(error)"))
            }
            let steps = mappingSteps(fd: .value(UInt64(fd)))
            let results = try runProgram(steps, cleanups: [closeMemfd])
            mapError = firstFailure(of: steps, in: results) ?? closeFailure(results.last)
        }
        if let mapError { throw mapError }
        let injected = injector.callCount
        do {
            try injector.restore()
        } catch {
            throw .unpatchable(.systemFailure(detail: "\(error)"))
        }
        let stops = injector.stopCount
        // Relocate and seal from outside, through /proc/PID/mem (the threads are still held: should
        // a write fail, the reservation is unmapped again by a call in the same thread).
        do {
            // A file-backed segment's last page holds file bytes past its end: zeros there, written
            // with the relocations (a word next to them shares their write).
            var zeros: [(address: UInt64, count: Int)] = []
            for segment in patch.segments where segment.memoryEnd > segment.fileEnd {
                let pageEnd = (segment.fileEnd + PatchLoader.pageMask) & ~PatchLoader.pageMask
                let zeroEnd = min(pageEnd, segment.memoryEnd)
                if zeroEnd > segment.fileEnd, segment.fileBackedLength > 0 {
                    zeros.append((base + segment.fileEnd, Int(zeroEnd - segment.fileEnd)))
                }
            }
            for group in PatchLoader.pageGroups(PatchLoader.coalesce(writes, zeros: zeros)) {
                // Several runs in one page: read it once, lay them over it, write and read back
                // once (no code of the image has run: the bytes between them are the file's).
                if group.count > 1, let low = group.first?.address, let last = group.last {
                    let span = EntrySpan(low: low, bytes: try memory.read(at: low, count: Int(last.address - low) + last.bytes.count))
                    if let merged = span.written(withRuns: group) {
                        try memory.write(merged, at: low)
                        continue
                    }
                }
                for run in group { try memory.write(run.bytes, at: run.address) }
            }
        } catch {
            throw .unpatchable(.systemFailure(detail: "relocating the patch object in process \(pid): \(error)"))
        }
        // Its unwind tables join libgcc_s's list before the seal: an image that is used can be
        // unwound through.
        if let unwind {
            let writes = try unwind.writes(base: base, memory: memory)
            do {
                for write in writes { try memory.write(write.bytes, at: write.address) }
            } catch {
                throw .unpatchable(.systemFailure(detail: "registering the patch's unwind tables in process \(pid): \(error)"))
            }
        }
        do {
            let image = PatchImage(base: base, size: imageSize, name: name)
            // The record, and zeros over the rest of the marker page: the path, the program and the
            // stub (which holds the injection thread's registers of that moment) are not left behind.
            // With them in spare code the page is still the reservation's zeros: the record alone.
            let record = PatchImageMarker.encode(image)
            let zeros = spare == nil ? Int(PatchImageMarker.pageSize) - record.count : 0
            try memory.write(record + [UInt8](repeating: 0, count: zeros), at: reservation)
            mapped = true
            handedOver = handsOverItsHold
            return LoadOutcome(image: image, injected: injected, stops: stops, hold: handedOver ? traced : nil,
                               leaderStatus: leaderStatus)
        } catch {
            throw .unpatchable(.systemFailure(detail: "sealing the patch image in process \(pid): \(error)"))
        }
    }

    /// How many bytes of the stub `Architecture.injectionStub` writes (the same for every thread).
    private static let stubBytes = HostArchitecture.injectionStub(resuming: ThreadRegisters(raw: cptrace_regs()), signalMask: 0).count

    /// Where every address a load's programs carry (the image's, its segments') is encoded as a
    /// 64-bit immediate, whatever its value: above any 32-bit value, far below the sign-extended
    /// ones. With the image there, the programs' length no longer depends on where it lies.
    static let farAddresses: Range<UInt64> = (UInt64(UInt32.max) + 1)..<(1 << 62)

    /// `areaBytes(near:total:segments:)` for an image anywhere in `farAddresses` (where every
    /// image of a 64-bit process lies but for one near a non-PIE executable in the first 4 GiB):
    /// the same for every process, so worked out once per parsed patch file (`PatchFile`).
    static func farAreaBytes(of patch: PatchObject, path: String) -> UInt64 {
        let near = farAddresses.lowerBound
        let total = patch.imageSize + PatchImageMarker.pageSize
        return areaBytes(path: path, near: near, total: total,
                         segments: segmentMappings(of: patch, base: near + PatchImageMarker.pageSize, fd: 3))
    }

    /// The most bytes a load's programs need from the start of their area: the longer of the path
    /// and the memfd name, the largest program (the reservation, openat, every mapping, close and
    /// an ending) and the stub, with the alignment between them. `segments` are the mappings of an
    /// image at `near` (`segmentMappings`). Taken from `farAreaBytes` for a far image.
    private func areaBytes(near: UInt64, total: UInt64, segments: [PlannedSystemCall]) -> UInt64 {
        if PatchLoader.farAddresses.contains(near), PatchLoader.farAddresses.contains(near + total) { return farAreaBytes }
        return PatchLoader.areaBytes(path: path, near: near, total: total, segments: segments)
    }

    /// `areaBytes(near:total:segments:)` of a patch object at `path`, worked out: the program encoded.
    static func areaBytes(path: String, near: UInt64, total: UInt64, segments: [PlannedSystemCall]) -> UInt64 {
        let calls = HostArchitecture.systemCalls
        let reservation = InjectionProgram.Call(number: calls.mmap, arguments: [
            near, total, PatchLoader.protRead | PatchLoader.protExec, PatchLoader.mapPrivate | PatchLoader.mapAnonymous | PatchLoader.mapFixedNoReplace,
            UInt64.max, 0].map { .value($0) }, expectation: .value(near))
        let open = InjectionProgram.Call(number: calls.openat, arguments: [
            .value(PatchLoader.atCurrentDirectory), .value(near), .value(PatchLoader.openFlags), .value(0)], expectation: .descriptor)
        let mappings = segments.map { planned in
            var arguments = planned.arguments.map { InjectionProgram.Argument.value($0) }
            if planned.arguments[3] & PatchLoader.mapAnonymous == 0 { arguments[4] = .resultOf(1) }
            return InjectionProgram.Call(number: planned.number, arguments: arguments, expectation: .value(planned.arguments[0]))
        }
        let program = InjectionProgram(calls: [reservation, open] + mappings,
                                       cleanups: [.init(number: calls.close, arguments: [.resultOf(1)], guardArgument: 0)],
                                       ending: .init(number: calls.tgkill, arguments: [UInt64(Int32.max), UInt64(Int32.max), 64]))
        let programBytes = HostArchitecture.injectionProgram(program, stubDistance: 0).bytes.count
        let nameBytes = max(path.utf8.count, ("hotpatch:" + PatchLoader.name(of: path)).utf8.count) + 1
        return ProgramArea.bytes(nameBytes: nameBytes, programBytes: programBytes, stubBytes: PatchLoader.stubBytes)
    }

    /// An area of `bytes` (and the stub at its end) in spare code (`SpareCode`) of an object `pid`
    /// maps, confirmed while every thread is held: still mapped executable and private from the
    /// same file at the same offset (asked of the kernel now, not taken from the maps read before
    /// the hold, in which a library could since have been unloaded) and still all zeros (no code of
    /// another tool, nor a program an agent left there as it died). The target's own spare code
    /// first (its pages may be copied for the redirect anyway), then the others' in address order.
    /// Nil when none qualifies, or the kernel cannot say (before Linux 6.11).
    /// The kernel is asked through `directory`'s kept maps file when given.
    static func spareProgramArea(in pid: ProcessID, objects: [LoadedObject], target: LoadedObject, cache: ObjectCache,
                                 memory: borrowing ProcessMemory, bytes: UInt64, directory: ProcessDirectory? = nil) -> ProgramArea? {
        guard cache.answersMappingQueries else { return nil }
        let others = objects.filter { $0.fileKey != target.fileKey || $0.loadBias != target.loadBias }
        for object in [target] + others {
            guard let first = object.mappings.first,
                  let spare = cache.identity(of: first, path: object.readablePath)?.spareCode,
                  spare.length >= bytes + 16 else { continue }
            let end = object.loadBias &+ spare.virtualAddress &+ spare.length
            let area = ProgramArea(ending: end, bytes: bytes, stubBytes: stubBytes)
            let start = area.start
            guard let known = object.mappings.first(where: { $0.isExecutable && !$0.isShared && $0.start <= start && end <= $0.end }) else {
                continue
            }
            let now: MemoryMapping?
            do throws(SystemError) {
                if let directory {
                    now = try ProcFS.privateExecutableFileMapping(of: directory, covering: start)
                } else {
                    now = try ProcFS.privateExecutableFileMapping(of: pid, covering: start)
                }
            } catch {
                if error.errno == ENOTTY || error.errno == EINVAL { cache.noteMappingQueriesRefused() }
                return nil
            }
            guard let now, now.end >= end, FileKey(now) == FileKey(known),
                  now.offset &+ (start &- now.start) == known.offset &+ (start &- known.start),
                  let current = try? memory.read(at: start, count: Int(end - start)), current.allSatisfy({ $0 == 0 }) else { continue }
            return area
        }
        return nil
    }

    /// Relocation writes for a load at `base`, failing before anything is injected.
    private func relocate(base: UInt64, resolver: inout SymbolResolver) throws(LoadFailure) -> [RelocationWrite] {
        var local = resolver
        defer { resolver = local }
        var unresolved: RequiredSymbol?
        do {
            return try patch.relocationWrites(loadBase: base, bind: { need in
                let binding = local.resolve(need)
                if binding == nil { unresolved = need }
                return binding
            })
        } catch {
            // The resolver knows why a symbol it found cannot be used; the loader only that it failed.
            let problem = unresolved.flatMap { local.problems[$0.name] }
            throw .unpatchable(.patchObjectRejected(detail: problem.map { "\(error); \($0)" } ?? "\(error)"))
        }
    }

    /// The mmap calls that place each segment of `patch` at `base`: the file-backed pages, then
    /// anonymous zero pages for the rest of a segment's memory (its .bss).
    static func segmentMappings(of patch: PatchObject, base: UInt64, fd: UInt64) -> [PlannedSystemCall] {
        var calls: [PlannedSystemCall] = []
        calls.reserveCapacity(patch.segments.count * 2)
        for segment in patch.segments {
            var protection: UInt64 = 0
            if segment.flags.contains(.readable) { protection |= PatchLoader.protRead }
            if segment.flags.contains(.writable) { protection |= PatchLoader.protWrite }
            if segment.flags.contains(.executable) { protection |= PatchLoader.protExec }
            if segment.fileBackedLength > 0 {
                calls.append(PlannedSystemCall(label: mmapLabels[Int(protection)], number: HostArchitecture.systemCalls.mmap, arguments: [
                    base + segment.mapOffset, segment.fileBackedLength, protection,
                    PatchLoader.mapPrivate | PatchLoader.mapFixed, fd, segment.fileOffset]))
            }
            if segment.mapLength > segment.fileBackedLength {
                calls.append(PlannedSystemCall(label: anonymousMmapLabels[Int(protection)], number: HostArchitecture.systemCalls.mmap, arguments: [
                    base + segment.mapOffset + segment.fileBackedLength, segment.mapLength - segment.fileBackedLength,
                    protection, PatchLoader.mapPrivate | PatchLoader.mapFixed | PatchLoader.mapAnonymous, UInt64.max, 0]))
            }
        }
        return calls
    }

    /// A segment mapping's label for each protection (read 1, write 2, exec 4), made once rather
    /// than for each segment of each process ("mmap(PROT_READ|PROT_EXEC)"), and for its .bss.
    private static let mmapLabels = (0..<8).map { "mmap(\(protectionText(UInt64($0))))" }
    private static let anonymousMmapLabels = mmapLabels.map { $0 + " anonymous" }

    private static func protectionText(_ protection: UInt64) -> String {
        var parts: [String] = []
        if protection & protRead != 0 { parts.append("PROT_READ") }
        if protection & protWrite != 0 { parts.append("PROT_WRITE") }
        if protection & protExec != 0 { parts.append("PROT_EXEC") }
        return parts.isEmpty ? "PROT_NONE" : parts.joined(separator: "|")
    }

    /// The zeros a segment's last page needs past its file bytes (`zeros`: address and length) and
    /// the 8-byte relocation words, merged where they touch or overlap into runs (sorted, one pwrite
    /// each); a word that falls on zeros is laid over them, as when the zeros are written first.
    static func coalesce(_ writes: [RelocationWrite], zeros: [(address: UInt64, count: Int)] = []) -> [(address: UInt64, bytes: [UInt8])] {
        // Every piece as a byte range; a run is a stretch of touching or overlapping ranges.
        let ranges = (zeros.filter { $0.count > 0 }.map { $0.address..<($0.address + UInt64($0.count)) }
            + writes.map { $0.address..<($0.address + 8) }).sorted { $0.lowerBound < $1.lowerBound }
        var spans: [Range<UInt64>] = []
        for range in ranges {
            if let last = spans.last, range.lowerBound <= last.upperBound {
                spans[spans.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                spans.append(range)
            }
        }
        var runs = spans.map { (address: $0.lowerBound, bytes: [UInt8](repeating: 0, count: Int($0.upperBound - $0.lowerBound))) }
        // Each word into the one run that holds it (the runs are sorted and disjoint).
        for write in writes {
            var low = 0, high = runs.count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                if runs[middle].address <= write.address { low = middle } else { high = middle - 1 }
            }
            let offset = Int(write.address - runs[low].address)
            withUnsafeBytes(of: write.value.littleEndian) { word in
                for index in 0..<8 { runs[low].bytes[offset + index] = word[index] }
            }
        }
        return runs
    }

    /// `runs` (sorted by address, as `coalesce` gives them) in groups of consecutive runs whose
    /// pages follow one another with none missing (a run in the same page as the last, or in the
    /// next), each written as one span; so a span never covers a page none of its runs writes
    /// (as `EntrySpan.written(withRuns:)` requires) and never skips one with a write of its own.
    static func pageGroups(_ runs: [(address: UInt64, bytes: [UInt8])]) -> [[(address: UInt64, bytes: [UInt8])]] {
        let pageSize = HostArchitecture.pageSize
        var groups: [[(address: UInt64, bytes: [UInt8])]] = []
        var groupEnd: UInt64 = 0  // the last page the last group writes
        for run in runs {
            let first = run.address / pageSize
            let last = (run.address + UInt64(max(run.bytes.count, 1)) - 1) / pageSize
            if !groups.isEmpty, first <= groupEnd + 1 {
                groups[groups.count - 1].append(run)
                groupEnd = max(groupEnd, last)
            } else {
                groups.append([run])
                groupEnd = last
            }
        }
        return groups
    }

    /// The bytes of the file the patch object was parsed from, for a memfd copy: read from `path`
    /// only while it is still that file (device and inode), since the relocations were planned
    /// from that parse. A file replaced since is reported busy, for the next pass to parse again.
    private func parsedFileContent() throws(LoadFailure) -> [UInt8] {
        let content: [UInt8]?
        do {
            let opened = try OpenFile(path: path, flags: O_RDONLY)
            content = StartFile(try opened.status()) == file ? try opened.readAll(limit: 1 << 30) : nil
        } catch {
            throw .unpatchable(.patchObjectRejected(detail: "cannot read \(path): \(error)"))
        }
        guard let content else { throw .busy("\(path) was replaced after it was read for this patch") }
        return content
    }

    /// Whether the process opening `path` would get `file`, the one the patch object was parsed
    /// from (its mount namespace may show another file there, or none). Compared with the parsed
    /// file's identity rather than a new stat of our own path: one path lookup fewer per process.
    static func processSees(_ file: StartFile, at path: String, pid: ProcessID) -> Bool {
        (try? StartFile(path: "/proc/\(pid)/root" + path)) == file
    }

    /// The address of a system call instruction in the process: in the vDSO, else in a mapped object.
    static func syscallInstruction(pid: ProcessID, mappings: [MemoryMapping], memory: borrowing ProcessMemory,
                                   cache: ObjectCache) -> UInt64? {
        if let vdso = mappings.first(where: { $0.path == "[vdso]" }) {
            // Where the last process had it, if the instruction is there in this one too (two
            // bytes read instead of the whole vDSO); else searched for, and remembered.
            let instruction = HostArchitecture.systemCallInstruction
            if let known = cache.vdsoSystemCallOffset, known + UInt64(instruction.count) <= vdso.size,
               (try? memory.read(at: vdso.start + known, count: instruction.count)) == instruction {
                return vdso.start + known
            }
            if let bytes = try? memory.read(at: vdso.start, count: Int(min(vdso.size, 1 << 16))),
               let index = HostArchitecture.firstSystemCallInstruction(in: bytes) {
                cache.noteVDSOSystemCall(at: UInt64(index))
                return vdso.start + UInt64(index)
            }
        }
        // Else a file-backed executable mapping; the offset is found once per file and cached.
        for mapping in mappings where mapping.isExecutable && mapping.isFileBacked {
            let path = ProcFS.mappedFilePath(of: pid, mapping: mapping)
            if let offset = cache.syscallInstructionOffset(in: mapping, path: path),
               offset >= mapping.offset, offset - mapping.offset < mapping.size {
                return mapping.start + (offset - mapping.offset)
            }
        }
        return nil
    }

    /// The signals, best first, with which an injected program may stop its thread in a process
    /// whose thread has `status`: ones whose default action is to ignore them and that the process
    /// has no handler for (`SigCgt`), so that one delivered with no agent left to suppress it does
    /// nothing. (SIGCONT, ignored by default too, is not one: sending it resumes a stopped
    /// process.) None when the thread's ids in its own pid namespace are unknown.
    static func stoppingSignals(status: ProcessStatus) -> [SystemCallInjector.ProgramStop] {
        guard let process = status.namespaceProcessID, let thread = status.namespaceThreadID,
              let caught = status.caughtSignals else { return [] }
        return [SIGURG, SIGWINCH, SIGCHLD].filter { caught & (UInt64(1) << UInt64($0 - 1)) == 0 }.map {
            .signal($0, processID: UInt64(process), threadID: UInt64(thread))
        }
    }

    /// A held thread stopped inside a system call the kernel restarts on resume, on a native
    /// system call instruction of its own: the leader if it is one, else the first other such thread.
    private static func threadAsleepInSystemCall(_ traced: TracedProcess, leader: ThreadID,
                                                 memory: borrowing ProcessMemory) -> ThreadID? {
        let held = traced.stoppedThreadIDs
        for tid in held.filter({ $0 == leader }) + held.filter({ $0 != leader }) {
            guard let registers = try? Ptrace.registers(tid), registers.resumeAddress != registers.instructionPointer,
                  isSystemCallInstruction(at: registers.resumeAddress, memory: memory) else { continue }
            return tid
        }
        return nil
    }

    /// Whether the process's memory at `address` holds the native system call instruction.
    private static func isSystemCallInstruction(at address: UInt64, memory: borrowing ProcessMemory) -> Bool {
        let instruction = HostArchitecture.systemCallInstruction
        return (try? memory.read(at: address, count: instruction.count)) == instruction
    }

    /// Maps a stop failure to a load failure.
    static func failure(_ stop: StopFailure) -> LoadFailure {
        switch stop {
        case let .tracedBy(tracer): return .unpatchable(.tracedBy(tracer: tracer))
        case .processGone: return .unpatchable(.processGone)
        case let .deadlineExceeded(stopped, total): return .busy("only \(stopped) of \(total) threads stopped before the deadline")
        case .groupStopped: return .busy("the process is stopped by a signal")
        case let .system(error): return .unpatchable(.systemFailure(detail: "\(error)"))
        }
    }
}

/// Where a load writes its path (or memfd name), its programs and the stub: the name at `start`,
/// each program just before the stub, the stub at `stub`. A marker page, or spare code.
struct ProgramArea: Equatable {
    /// The first byte: the name's.
    let start: UInt64
    /// The stub's first byte, its system call instruction.
    let stub: UInt64

    /// An area given by its bounds (a marker page's).
    init(start: UInt64, stub: UInt64) {
        self.start = start
        self.stub = stub
    }

    /// The area of at most `bytes` that ends at `end` (spare code's end): its start and the stub
    /// each on a 16-byte boundary, the stub's `stubBytes` ending at or before `end`.
    init(ending end: UInt64, bytes: UInt64, stubBytes: Int) {
        start = (end - bytes + 15) & ~15
        stub = (end - UInt64(stubBytes)) & ~15
    }

    /// The bytes an area must span to take a name of `nameBytes` (its NUL included), a program of
    /// `programBytes` and the stub wherever its end lies: three 16-byte alignments can each cost
    /// up to 15 (the area's start, the stub's and the program's own, just before the stub).
    static func bytes(nameBytes: Int, programBytes: Int, stubBytes: Int) -> UInt64 {
        UInt64(nameBytes + programBytes + stubBytes + 3 * 15)
    }

    /// Where a program of `programBytes` starts, from `start`: on the last 16-byte boundary that
    /// leaves it room before the stub; nil when it would overlap the name's `nameBytes`.
    func programOffset(programBytes: Int, nameBytes: Int) -> UInt64? {
        let room = stub - start
        guard UInt64(programBytes) < room else { return nil }
        let offset = (room - UInt64(programBytes)) & ~15
        return UInt64(nameBytes) <= offset ? offset : nil
    }
}
