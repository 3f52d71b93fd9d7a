import Architecture
import Foundation
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

extension LivePatchTests {
    /// Linux fails sigwaitinfo, epoll_wait and semop with EINTR after any stop (signal(7)); the
    /// program must not see ours.
    @Test func release_whenThreadsWaitInCallsAStopFails_runsThemAgainSoNoEINTRIsSeen() throws {
        let path = try Live.builder.build("stop_waiter.c", flags: ["-O1", "-pthread"])
        let waiter = try RunningProcess(path, [])
        defer { waiter.stop() }
        _ = try waiter.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        // Let every thread reach its blocking call.
        Thread.sleep(forTimeInterval: 0.1)
        for _ in 0..<20 {
            try Live.tracer.perform {
                let traced = try TracedProcess.stopAllThreads(pid: ProcessID(waiter.pid),
                                                              deadline: Monotonic.now.adding(microseconds: 2_000_000))
                #expect(traced.stoppedThreadIDs.count == 4)
                traced.release()
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        _ = try waiter.freshLine()
        #expect(try waiter.freshLine() == "sigwaitinfo=0 epoll_wait=0 semop=0")
        #expect(waiter.isAlive)
    }

    @Test func rerun_appliesOnlyToEINTRFromTheCallsAStopFails() {
        var registers = Registers()
        registers[word: X86_64.Word.origRAX] = 232
        registers[word: X86_64.Word.rax] = UInt64(bitPattern: -4)
        registers[word: X86_64.Word.rip] = 0x1002
        let rerun = X86_64.rerunningCallFailedByStop(registers)
        #expect(rerun?[word: X86_64.Word.rax] == 232)
        #expect(rerun?[word: X86_64.Word.rip] == 0x1000)
        #expect(rerun?[word: X86_64.Word.origRAX] == UInt64.max)
        // A read (restarted by the kernel itself), another error, or no call: nothing.
        registers[word: X86_64.Word.origRAX] = 0
        #expect(X86_64.rerunningCallFailedByStop(registers) == nil)
        registers[word: X86_64.Word.origRAX] = 232
        registers[word: X86_64.Word.rax] = UInt64(bitPattern: -11)
        #expect(X86_64.rerunningCallFailedByStop(registers) == nil)
        registers[word: X86_64.Word.origRAX] = UInt64.max
        registers[word: X86_64.Word.rax] = UInt64(bitPattern: -4)
        #expect(X86_64.rerunningCallFailedByStop(registers) == nil)
    }
}

/// A plain register block for the pure test.
private struct Registers: RegisterWords, Equatable {
    var words = [UInt64](repeating: 0, count: X86_64.Word.count)
    subscript(word index: Int) -> UInt64 {
        get { words[index] }
        set { words[index] = newValue }
    }
}
