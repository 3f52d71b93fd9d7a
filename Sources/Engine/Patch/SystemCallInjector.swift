import Glibc

/// x86_64 system call numbers the Engine injects.
enum SystemCallNumber {
    static let close = 3
    static let mmap = 9
    static let mprotect = 10
    static let munmap = 11
    static let rtSigprocmask = 14
    static let openat = 257
    static let memfdCreate = 319
}

/// Runs system calls (never functions) inside a target thread that `TracedProcess` holds: it points
/// the thread at a `syscall` instruction with the call's registers, single-steps it, and reads the
/// result. No code of the target runs, so no lock it holds can deadlock us.
///
/// The first call runs on an existing `syscall` (vDSO or libc) with the thread's own signal mask.
/// Once the caller has written an `InjectionStub` into the target (`useStub`), every later call runs
/// on the stub's `syscall` with signals blocked: should the agent die while the thread holds our
/// registers, the thread runs on into the stub, which puts back its own registers and mask.
final class SystemCallInjector {
    private let traced: TracedProcess
    /// The thread the calls run in.
    let tid: Int32
    /// The address of the `syscall` instruction (0F 05) the calls run on.
    private(set) var instruction: UInt64
    private let savedRegisters: ThreadRegisters
    private let savedSignalMask: UInt64
    private var restored = true
    /// How many calls ran.
    private(set) var callCount = 0

    /// Signals that must stay deliverable: a fault during injection has to behave as it would.
    private static let faultSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE]

    /// Saves the thread's registers and signal mask; `instruction` is an existing `syscall`.
    init(traced: TracedProcess, tid: Int32, instruction: UInt64) throws {
        self.traced = traced
        self.tid = tid
        self.instruction = instruction
        savedRegisters = try Ptrace.registers(tid)
        savedSignalMask = try Ptrace.signalMask(tid)
    }

    /// The stub that would resume this thread as it was; to be written into the target.
    var stub: InjectionStub { InjectionStub(registers: savedRegisters, signalMask: savedSignalMask) }

    /// Runs later calls on the stub written at `address`, then blocks every signal but faults (a
    /// signal storm would otherwise interrupt each step). Before the stub exists a tracer death
    /// would leave the mask blocked for good, so the mask is changed only now.
    func useStub(at address: UInt64) throws {
        instruction = address
        var blockAll = UInt64.max
        for signal in SystemCallInjector.faultSignals { blockAll &= ~(UInt64(1) << UInt64(signal - 1)) }
        restored = false
        try Ptrace.setSignalMask(tid, blockAll)
    }

    /// Runs one system call and returns its raw result (a negative value is -errno).
    func call(_ number: Int, _ arguments: [UInt64], deadline: Monotonic.Instant) throws -> Int64 {
        var registers = savedRegisters
        registers.prepareSystemCall(number: number, arguments: arguments, at: instruction)
        // The stub pushes (popfq): its stack starts below the red zone of the interrupted code.
        registers.stackPointer = (savedRegisters.stackPointer &- InjectionStub.stackGap) & ~0xf
        restored = false
        try Ptrace.setRegisters(tid, registers)
        callCount += 1
        // A pending signal can stop the thread before it executes the instruction (the first call
        // runs with the thread's own mask); step again.
        for _ in 0..<64 {
            let alive: Bool
            do { alive = try traced.singleStep(tid, deadline: deadline) } catch {
                throw InjectionFailure.stop(error)
            }
            guard alive else { throw InjectionFailure.stop(.processGone) }
            let after = try Ptrace.registers(tid)
            if after.instructionPointer == instruction + 2 { return Int64(bitPattern: after.rax) }
            if after.instructionPointer != instruction {
                throw InjectionFailure.unexpectedLocation(after.instructionPointer)
            }
        }
        throw InjectionFailure.unexpectedLocation(instruction)
    }

    /// Puts back the thread's registers and signal mask exactly as they were, so an interrupted
    /// `nanosleep` or `read` restarts as if nothing happened.
    func restore() throws {
        guard !restored else { return }
        restored = true
        try Ptrace.setRegisters(tid, savedRegisters)
        try Ptrace.setSignalMask(tid, savedSignalMask)
    }
}

/// How an injection went wrong.
enum InjectionFailure: Error {
    /// The thread could not be stepped (gone, deadline).
    case stop(StopFailure)
    /// After the step the thread was somewhere else than right after the `syscall` instruction.
    case unexpectedLocation(UInt64)
}
