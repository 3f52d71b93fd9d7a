import Glibc
import Testing
@testable import Engine

@Test func programSignal_isAPlainSignalOfTheProgram() {
    #expect(TracedProcess.isProgramSignal(SIGUSR1, event: 0))
    #expect(TracedProcess.isProgramSignal(SIGCHLD, event: 0))
}

@Test func programSignal_excludesOurOwnStops() {
    // A single-step's trap, a system call stop (PTRACE_O_TRACESYSGOOD), an interrupt or group stop.
    #expect(!TracedProcess.isProgramSignal(SIGTRAP, event: 0))
    #expect(!TracedProcess.isProgramSignal(SIGTRAP | 0x80, event: 0))
    #expect(TracedProcess.systemCallStopSignal == SIGTRAP | 0x80)
    #expect(!TracedProcess.isProgramSignal(SIGTRAP, event: 128))
    #expect(!TracedProcess.isProgramSignal(SIGSTOP, event: 128))
}
