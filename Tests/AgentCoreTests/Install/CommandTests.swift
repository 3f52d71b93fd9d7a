@testable import AgentCore
import Foundation
import Glibc
import Testing

@Test func run_collectsStatusAndBothOutputs() throws {
    let outcome = try Command.run("/bin/sh", ["-c", "echo to-stdout; echo to-stderr >&2; exit 3"])
    #expect(outcome.status == 3)
    #expect(outcome.output == "to-stdout\n")
    #expect(outcome.errorOutput == "to-stderr\n")
    #expect(outcome.diagnostic == "to-stderr\n")
}

@Test func run_whenBothOutputsExceedAPipe_doesNotDeadlock() throws {
    let outcome = try Command.run("/bin/sh", ["-c", "head -c 300000 /dev/zero >&2; head -c 300000 /dev/zero"])
    #expect(outcome.status == 0)
    #expect(outcome.output.utf8.count == 300_000)
    #expect(outcome.errorOutput.utf8.count == 300_000)
}

@Test func run_whenKilledBySignal_reports128PlusTheSignal() throws {
    let outcome = try Command.run("/bin/sh", ["-c", "kill -9 $$"])
    #expect(outcome.status == 128 + SIGKILL)
}

@Test func run_givesTheChildEmptyStandardInputAndNoBlockedSignal() throws {
    var blocked = sigset_t(), previous = sigset_t()
    sigemptyset(&blocked)
    sigaddset(&blocked, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &blocked, &previous)
    defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
    let outcome = try Command.run("/bin/sh", ["-c", "cat; grep SigBlk /proc/self/status"])
    #expect(outcome.status == 0)
    #expect(outcome.output == "SigBlk:\t0000000000000000\n")
}

@Test func run_whenTheProgramIsMissing_throwsNamingIt() {
    #expect(throws: AgentCoreError.self) { try Command.run("/nonexistent/dpkg", ["--version"]) }
}

/// Foundation's Process hears of its child's exit through a dispatch source; with every thread of
/// the cooperative pool blocked in a wait, that notice never came and the agent hung on stop.
@Test(.timeLimit(.minutes(1)))
func run_fromMoreTasksThanTheCooperativePoolHasThreads_completes() async throws {
    let count = ProcessInfo.processInfo.activeProcessorCount * 3
    let statuses = try await withThrowingTaskGroup(of: Int32.self) { group in
        for _ in 0..<count {
            group.addTask { try Command.run("/bin/sh", ["-c", "sleep 0.2; exit 7"]).status }
        }
        var collected: [Int32] = []
        for try await status in group { collected.append(status) }
        return collected
    }
    #expect(statuses == Array(repeating: 7, count: count))
}

@Test func run_whenTheTimeoutPasses_killsTheCommandAndReportsIt() throws {
    let started = Date()
    let outcome = try Command.run("/bin/sh", ["-c", "echo started; exec sleep 30"], timeoutSeconds: 0.3)
    #expect(outcome.status == 128 + SIGKILL)
    #expect(outcome.output == "started\n")
    #expect(Date().timeIntervalSince(started) < 5)
}
