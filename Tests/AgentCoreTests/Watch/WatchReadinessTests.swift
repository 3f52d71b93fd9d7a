@testable import AgentCore
import Testing

/// The first cycle waits until the process watch can see a patched process die.
@Suite struct WatchReadinessTests {
    @Test func wait_whenDeclaredBefore_returnsTrueAtOnce() async {
        let readiness = WatchReadiness()
        readiness.declareReady()
        // A wait that ran to its limit would say false.
        #expect(await readiness.wait(atMost: .seconds(3600)))
        #expect(readiness.isReady)
    }

    @Test func wait_returnsOnlyOnceDeclared_andReleasesEveryWaiter() async {
        let readiness = WatchReadiness()
        let returned = SharedCount()
        let waits = (0..<3).map { _ in
            Task {
                let ready = await readiness.wait(atMost: .seconds(3600))
                returned.increment()
                return ready
            }
        }
        try? await Task.sleep(for: .milliseconds(200))
        #expect(returned.value == 0, "no wait may end before readiness is declared")
        #expect(!readiness.isReady)
        readiness.declareReady()
        for wait in waits { #expect(await wait.value) }
        #expect(returned.value == 3)
    }

    @Test func wait_whenNeverDeclared_returnsFalseAfterItsLimit() async {
        let readiness = WatchReadiness()
        let start = ContinuousClock.now
        #expect(await readiness.wait(atMost: .milliseconds(100)) == false)
        // Not before its limit. (How long after depends on the machine: the waiter resumes when a
        // cooperative thread is free, which took 22 s in a busy test run.)
        #expect(ContinuousClock.now - start >= .milliseconds(100))
        // A later declaration still counts for the next wait.
        readiness.declareReady()
        #expect(await readiness.wait(atMost: .milliseconds(100)))
    }

    @Test func wait_whenItsTaskIsCancelled_returnsFalseBeforeItsLimit() async {
        let readiness = WatchReadiness()
        // A limit no run reaches (and no arithmetic may overflow on): only the cancellation ends it.
        let wait = Task { await readiness.wait(atMost: .seconds(Int64.max)) }
        try? await Task.sleep(for: .milliseconds(50))
        wait.cancel()
        #expect(await wait.value == false)
    }
}
