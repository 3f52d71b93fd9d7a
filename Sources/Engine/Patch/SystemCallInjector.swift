import Architecture
import Glibc
import LinuxSystem

/// Runs system calls (never functions) inside a target thread that `TracedProcess` holds: it points
/// the thread at a system call instruction with the call's registers, resumes it with
/// PTRACE_SYSCALL to the call's entry and then its exit, and reads the result there. No code of the
/// target runs, so no lock it holds can deadlock us, and nothing is single-stepped: a system call
/// stop arms nothing that outlives the agent (the kernel clears system call tracing when a tracer
/// dies, and a thread in such a stop carries on without a signal).
///
/// The first call runs on an existing system call instruction (vDSO or libc), or in place of the
/// system call the thread was interrupted in (`runFirstCallInPlaceOfRestartedCall`), with the
/// thread's own signal mask; at its exit the thread is at once given back its own state ("parked"),
/// since a thread left past that instruction with our registers could not go on by itself. Once
/// the caller has written the injection stub (`Architecture.injectionStub`) into the target
/// (`useStub`), every later call runs on the stub's system call instruction with signals blocked,
/// and the thread waits at the stub between calls: should the agent die, the thread runs on into
/// the stub, which puts back its own registers and mask.
///
/// The stub may also come first, in spare code of an object the process maps (`PatchLoader`): then
/// no call runs outside it, and the first thing the thread runs is a program.
///
/// Many calls are cheaper as one program (`run(_:at:…)`, `Architecture.injectionProgram`): the
/// thread runs them all without a stop and stops once, at its ending on the stub's instruction,
/// either by sending itself a signal the process ignores (`ProgramStop.signal`: one stop for the
/// whole program) or, where no such signal can be used, at every system call as above
/// (`ProgramStop.systemCallStops`). Either way nothing is armed that outlives the agent: should it
/// die, the program runs to its end and into the stub.
final class SystemCallInjector {
    private let traced: TracedProcess
    /// The thread the calls run in.
    let tid: ThreadID
    /// The address of the system call instruction the calls run on.
    private(set) var instruction: UInt64
    private let savedRegisters: ThreadRegisters
    private let savedSignalMask: UInt64
    /// The thread's own signal mask, as it was when it was stopped.
    var signalMask: UInt64 { savedSignalMask }
    /// The first call takes the place of the system call the thread was interrupted in, on the
    /// thread's own system call instruction (see `runFirstCallInPlaceOfRestartedCall`).
    private var firstCallInPlace = false
    /// Calls run on the stub (and the thread waits on it between calls).
    private var onStub = false
    /// The stub was unmapped by a call (`callRemovingStub`): no call may run any more.
    private var stubRemoved = false
    private var signalsBlocked = false
    private var restored = true
    /// How many calls ran.
    private(set) var callCount = 0
    /// How many times the thread was let run and stopped again: each a round trip between the
    /// agent and the thread, the load's largest cost.
    private(set) var stopCount = 0

    /// Signals that must stay deliverable: a fault during injection has to behave as it would.
    private static let faultSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE]
    /// The mask the thread runs on the stub with: every signal blocked but the faults and `open`.
    private static func stubMask(leavingOpen open: Int32? = nil) -> UInt64 {
        var mask = UInt64.max
        for signal in faultSignals + (open.map { [$0] } ?? []) { mask &= ~(UInt64(1) << UInt64(signal - 1)) }
        return mask
    }

    /// How the thread is stopped once a program is done.
    enum ProgramStop: Equatable {
        /// The ending sends `signal` to the thread itself: the only stop of the whole program, at the
        /// signal's delivery. The signal must be one the process neither catches nor the thread
        /// blocks (so that, with the agent gone, the kernel discards it or delivers it to no effect),
        /// and `processID`/`threadID` are the ids the process knows itself and the thread by.
        case signal(Int32, processID: UInt64, threadID: UInt64)
        /// Every system call stops the thread (PTRACE_SYSCALL); the program's end is the entry
        /// stop of its ending, a call that changes nothing.
        case systemCallStops

        /// The call that ends a program run this way.
        var ending: InjectionProgram.Ending {
            switch self {
            case let .signal(signal, process, thread):
                InjectionProgram.Ending(number: HostArchitecture.systemCalls.tgkill, arguments: [process, thread, UInt64(signal)])
            case .systemCallStops:
                // rt_sigprocmask(SIG_BLOCK, NULL, NULL, 8): without a set, the mask stays as it is.
                InjectionProgram.Ending(number: HostArchitecture.systemCalls.rtSigprocmask, arguments: [0, 0, 0, 8])
            }
        }
    }

    /// Saves the thread's registers and signal mask; `instruction` is an existing system call instruction.
    init(traced: TracedProcess, tid: ThreadID, instruction: UInt64) throws {
        self.traced = traced
        self.tid = tid
        self.instruction = instruction
        savedRegisters = try Ptrace.registers(tid)
        savedSignalMask = try Ptrace.signalMask(tid)
    }

    /// The stub that would resume this thread as it was; to be written into the target.
    var stub: [UInt8] { HostArchitecture.injectionStub(resuming: savedRegisters, signalMask: savedSignalMask) }

    /// The thread's own state as it continues when it runs on freely from a system call stop: the
    /// kernel's restart rules already applied and no call pending (`Architecture.resumed`). What
    /// the stub restores, set with ptrace instead.
    private var parkedRegisters: ThreadRegisters { HostArchitecture.resumed(savedRegisters) }

    /// The thread's own system call instruction, if it was stopped inside a system call the kernel
    /// will run again when it resumes: where the kernel moves it back to.
    var restartedSystemCall: UInt64? {
        HostArchitecture.systemCallRestartedOnResume(savedRegisters) == nil ? nil : savedRegisters.resumeAddress
    }

    /// Runs the first call in place of the system call the thread was interrupted in, which the
    /// caller checked is the native system call instruction at `restartedSystemCall`. The thread is resumed
    /// with its own registers, so the kernel restarts its call, and the call is swapped for ours at
    /// its entry stop. Until that stop the thread holds nothing of ours; from there to the exit
    /// stop, where it is parked, a thread left to itself would return from its own call with our
    /// call's result and argument registers — into its own code, not foreign code.
    func runFirstCallInPlaceOfRestartedCall() {
        if callCount == 0, restartedSystemCall != nil { firstCallInPlace = true }
    }

    /// Runs later calls on the stub written at `address`. Signals are blocked with the next call,
    /// once the thread holds registers that lead into the stub (which unblocks them again).
    func useStub(at address: UInt64) {
        instruction = address
        onStub = true
    }

    /// Runs one system call and returns its raw result (a negative value is -errno).
    func call(_ number: Int, _ arguments: [UInt64], deadline: Monotonic.Instant) throws -> Int64 {
        guard !stubRemoved else { throw InjectionFailure.unexpectedLocation(instruction) }
        if firstCallInPlace, let own = restartedSystemCall {
            firstCallInPlace = false
            return try callInPlace(of: own, number, arguments, deadline: deadline)
        }
        var registers = savedRegisters
        registers.prepareSystemCall(number: number, arguments: arguments, at: instruction)
        // The stub uses the stack: it starts below the red zone of the interrupted code.
        registers.stackPointer = HostArchitecture.injectionStackPointer(below: savedRegisters.stackPointer)
        restored = false
        try Ptrace.setRegisters(tid, registers)
        if onStub && !signalsBlocked {
            // Only now: a thread that runs on from here passes through the stub, which unblocks.
            try Ptrace.setSignalMask(tid, SystemCallInjector.stubMask())
            signalsBlocked = true
        }
        return try run(number, deadline: deadline)
    }

    /// Runs `program`, written at `address` with the stub in place (`useStub`), and returns its
    /// results (`EncodedInjectionProgram.results`, read from `memory`): the thread stops once the
    /// program is done, as `stop` says, which must be how the program's ending was chosen
    /// (`ProgramStop.ending`). Every call that ran counts in `callCount`, the ending included.
    /// The thread then waits at that stop, holding our registers; `restore` puts it back.
    func run(_ program: EncodedInjectionProgram, at address: UInt64, stop: ProgramStop, memory: borrowing ProcessMemory,
             deadline: Monotonic.Instant) throws -> [Int64?] {
        guard onStub, !stubRemoved else { throw InjectionFailure.unexpectedLocation(address) }
        var registers = savedRegisters
        registers.prepareSystemCall(number: 0, arguments: [], at: address)
        // The result slots lie just below the stack the stub would use, past the red zone; what
        // the thread's stack held there is put back once they are read.
        let slots = HostArchitecture.injectionStackPointer(below: savedRegisters.stackPointer) - UInt64(program.stackBytes)
        registers.stackPointer = slots
        let underneath = try memory.read(at: slots, count: program.stackBytes)
        restored = false
        try Ptrace.setRegisters(tid, registers)
        // As for a call on the stub: the mask changes only once the registers lead into it.
        if case let .signal(signal, _, _) = stop {
            try Ptrace.setSignalMask(tid, SystemCallInjector.stubMask(leavingOpen: signal))
        } else {
            try Ptrace.setSignalMask(tid, SystemCallInjector.stubMask())
        }
        signalsBlocked = true
        let end = instruction + UInt64(HostArchitecture.systemCallInstruction.count)
        let ending = stop.ending.number
        func isEnd(_ registers: ThreadRegisters) -> Bool {
            registers.instructionPointer == end && registers.currentSystemCall == ending
        }
        // A fault in the program or the stub is ours (their memory taken away under them, say):
        // the process must not receive it. It ends the run, and no call may run there any more.
        let tid = tid
        let injectedCode = min(address, instruction)..<(max(address, instruction) + 512)
        var fault: (signal: Int32, address: UInt64)?
        func isOurFault(_ signal: Int32) -> Bool {
            guard SystemCallInjector.faultSignals.contains(signal), let registers = try? Ptrace.registers(tid),
                  injectedCode.contains(registers.instructionPointer) else { return false }
            fault = (signal, registers.instructionPointer)
            return true
        }
        func faultFailure() -> InjectionFailure? {
            guard let fault else { return nil }
            stubRemoved = true
            return .faulted(signal: fault.signal, address: fault.address)
        }
        var alive = false
        switch stop {
        case let .signal(own, _, _):
            do {
                stopCount += 1
                alive = try traced.runToOwnSignal(tid, deadline: deadline) { signal in
                    // The ending's signal, delivered as the ending returns: ours. The same signal
                    // anywhere else came from outside, and is the program's.
                    (signal == own && (try? Ptrace.registers(tid)).map(isEnd) == true) || isOurFault(signal)
                }
            } catch {
                throw InjectionFailure.stop(error)
            }
            if let failure = faultFailure() { throw failure }
        case .systemCallStops:
            while true {
                stopCount += 1
                do { alive = try traced.runToSystemCallStop(tid, deadline: deadline, stoppingAt: isOurFault) } catch {
                    throw InjectionFailure.stop(error)
                }
                if let failure = faultFailure() { throw failure }
                if !alive { break }
                let registers = try Ptrace.registers(tid)
                if isEnd(registers) { break }
            }
            // That was the ending's entry stop: run it to its exit, so the thread is parked as
            // after any other call (a call that follows, such as the failure path's munmap, counts
            // on an exit stop; from an entry stop its first stop would be this one's exit, and the
            // call itself would be skipped).
            if alive {
                stopCount += 1
                do { alive = try traced.runToSystemCallStop(tid, deadline: deadline) } catch { throw InjectionFailure.stop(error) }
                if alive {
                    let exit = try Ptrace.registers(tid)
                    guard isEnd(exit) else { throw InjectionFailure.unexpectedLocation(exit.instructionPointer) }
                }
            }
        }
        guard alive else { throw InjectionFailure.stop(.processGone) }
        let results = EncodedInjectionProgram.results(from: try memory.read(at: slots, count: 8 * program.resultCount))
        try memory.write(underneath, at: slots, verify: false)
        callCount += results.filter { $0 != nil }.count + 1
        return results
    }

    /// Runs a last call that unmaps the stub (the failure path's `munmap` of the reservation): the
    /// thread's own signal mask goes back first, and right after the call the thread is parked at
    /// its own state, as after the first call. No call may follow.
    func callRemovingStub(_ number: Int, _ arguments: [UInt64], deadline: Monotonic.Instant) throws -> Int64 {
        if signalsBlocked {
            // The thread waits at the stub: should the agent die now, the stub restores the same mask.
            try Ptrace.setSignalMask(tid, savedSignalMask)
            signalsBlocked = false
        }
        onStub = false
        let result = try call(number, arguments, deadline: deadline)
        stubRemoved = true
        return result
    }

    private func callInPlace(of own: UInt64, _ number: Int, _ arguments: [UInt64], deadline: Monotonic.Instant) throws -> Int64 {
        callCount += 1
        restored = false
        func toNextStop() throws {
            stopCount += 1
            let alive: Bool
            do { alive = try traced.runToSystemCallStop(tid, deadline: deadline) } catch {
                throw InjectionFailure.stop(error)
            }
            guard alive else { throw InjectionFailure.stop(.processGone) }
        }
        // The thread's own call, as the kernel restarts it (restart_syscall after -ERESTART_RESTARTBLOCK).
        let restarted = HostArchitecture.systemCallRestartedOnResume(savedRegisters)
        let past = own + UInt64(HostArchitecture.systemCallInstruction.count)
        try toNextStop()
        var entry = try Ptrace.registers(tid)
        guard entry.instructionPointer == past, entry.currentSystemCall == restarted else {
            throw InjectionFailure.unexpectedLocation(entry.instructionPointer)
        }
        // An anonymous mmap ignores its descriptor, and any page-aligned offset will do: those keep
        // the thread's own fifth and sixth argument registers, which code after its own system call
        // may still use (glibc keeps the old cancellation type in one of them across a cancellable call).
        var arguments = arguments
        if number == HostArchitecture.systemCalls.mmap, arguments.count == 6, arguments[3] & UInt64(MAP_ANONYMOUS) != 0 {
            arguments[4] = HostArchitecture.systemCallArgument(entry, 4)
            let offset = HostArchitecture.systemCallArgument(entry, 5)
            if offset & (HostArchitecture.pageSize - 1) == 0 { arguments[5] = offset }
        }
        entry.replaceEnteringSystemCall(number: number, arguments: arguments)
        try Ptrace.setRegisters(tid, entry)
        try toNextStop()
        let after = try Ptrace.registers(tid)
        try Ptrace.setRegisters(tid, parkedRegisters)
        guard after.instructionPointer == past, after.currentSystemCall == number else {
            throw InjectionFailure.unexpectedLocation(after.instructionPointer)
        }
        return after.systemCallResult
    }

    /// Takes the thread prepared by `call` through the system call's entry and exit stops.
    private func run(_ number: Int, deadline: Monotonic.Instant) throws -> Int64 {
        callCount += 1
        for _ in 0..<2 {
            stopCount += 1
            let alive: Bool
            do { alive = try traced.runToSystemCallStop(tid, deadline: deadline) } catch {
                throw InjectionFailure.stop(error)
            }
            guard alive else { throw InjectionFailure.stop(.processGone) }
        }
        let after = try Ptrace.registers(tid)
        // Off the stub, the thread sits just past a system call instruction of the program with
        // our registers: give it back its own state before anything else.
        if !onStub { try Ptrace.setRegisters(tid, parkedRegisters) }
        guard after.instructionPointer == instruction + UInt64(HostArchitecture.systemCallInstruction.count),
              after.currentSystemCall == number else {
            throw InjectionFailure.unexpectedLocation(after.instructionPointer)
        }
        return after.systemCallResult
    }

    /// Puts back the thread's registers and signal mask exactly as they were, so an interrupted
    /// `nanosleep` or `read` restarts as if nothing happened. From a system call stop the thread is
    /// first moved into an interrupt stop, where the kernel still applies its restart rules to the
    /// registers set there. The mask goes back before the registers: in between, the thread would
    /// still run into the stub, which restores both.
    func restore() throws {
        guard !restored else { return }
        restored = true
        let deadline = Monotonic.now.adding(microseconds: 2_000_000)
        do {
            guard try traced.waitForStop(tid, deadline: deadline) else { return }
            if traced.isAtSystemCallStop(tid) {
                stopCount += 1
                guard try traced.interruptStop(tid, deadline: deadline) else { return }
            }
        } catch {
            throw InjectionFailure.stop(error)
        }
        try Ptrace.setSignalMask(tid, savedSignalMask)
        signalsBlocked = false
        // A call our stop failed with EINTR runs again, as the release does for the other threads.
        let resuming = HostArchitecture.rerunningCallFailedByStop(savedRegisters) ?? savedRegisters
        try Ptrace.setRegisters(tid, resuming)
        traced.settle(tid, registers: resuming)
    }
}

/// How an injection went wrong.
enum InjectionFailure: Error {
    /// The thread could not be run to its stops (gone, deadline).
    case stop(StopFailure)
    /// After the call the thread was somewhere else than right after the system call instruction.
    case unexpectedLocation(UInt64)
    /// Injected code faulted (`signal` at `address`): the thread holds our registers in the fault's
    /// stop, the signal not kept for it; `restore` puts it back. No call may follow.
    case faulted(signal: Int32, address: UInt64)
}
