import Glibc

/// x86_64 system call numbers the Engine injects.
enum SystemCallNumber {
    static let close = 3
    static let mmap = 9
    static let mprotect = 10
    static let munmap = 11
    static let openat = 257
    static let memfdCreate = 319
}

/// Runs system calls (never functions) inside a target thread that `TracedProcess` holds: it points
/// the thread at an existing `syscall` instruction with the call's registers, single-steps it, and
/// reads the result. No code of the target runs, so no lock it holds can deadlock us.
final class SystemCallInjector {
    private let traced: TracedProcess
    /// The thread the calls run in.
    let tid: Int32
    /// The address of a `syscall` instruction (0F 05) in the target.
    let instruction: UInt64
    private let savedRegisters: ThreadRegisters
    private let savedSignalMask: UInt64
    private var restored = false
    /// How many calls ran.
    private(set) var callCount = 0

    /// Signals that must stay deliverable: a fault during injection has to behave as it would.
    private static let faultSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE]

    /// Saves the thread's registers and signal mask, then blocks every signal but faults (a signal
    /// storm would otherwise interrupt each step).
    init(traced: TracedProcess, tid: Int32, instruction: UInt64) throws {
        self.traced = traced
        self.tid = tid
        self.instruction = instruction
        savedRegisters = try Ptrace.registers(tid)
        savedSignalMask = try Ptrace.signalMask(tid)
        var blockAll = UInt64.max
        for signal in SystemCallInjector.faultSignals { blockAll &= ~(UInt64(1) << UInt64(signal - 1)) }
        try Ptrace.setSignalMask(tid, blockAll)
    }

    /// Runs one system call and returns its raw result (a negative value is -errno).
    func call(_ number: Int, _ arguments: [UInt64], deadline: Monotonic.Instant) throws -> Int64 {
        var registers = savedRegisters
        registers.prepareSystemCall(number: number, arguments: arguments, at: instruction)
        try Ptrace.setRegisters(tid, registers)
        restored = false
        callCount += 1
        // A pending interrupt can stop the thread before it executes the instruction; step again.
        for _ in 0..<8 {
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
