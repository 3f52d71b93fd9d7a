@testable import AgentCore
import Testing

/// The first cycle waits until the process watch can see a patched process die.
@Suite struct WatchReadinessTests {
    @Test func wait_whenDeclaredBefore_returnsTrueAtOnce() async {
        let readiness = WatchReadiness()
        readiness.declareReady()
        let start = ContinuousClock.now
        #expect(await readiness.wait(atMost: .seconds(30)))
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(readiness.isReady)
    }

    @Test func wait_returnsOnlyOnceDeclared_andReleasesEveryWaiter() async {
        let readiness = WatchReadiness()
        let returned = SharedCount()
        let waits = (0..<3).map { _ in
            Task {
                let ready = await readiness.wait(atMost: .seconds(30))
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
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(100))
        #expect(waited < .seconds(10))
        // A later declaration still counts for the next wait.
        readiness.declareReady()
        #expect(await readiness.wait(atMost: .milliseconds(100)))
    }

    @Test func wait_whenItsTaskIsCancelled_returnsFalsePromptly() async {
        let readiness = WatchReadiness()
        let wait = Task { await readiness.wait(atMost: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        wait.cancel()
        #expect(await wait.value == false)
        #expect(ContinuousClock.now - start < .seconds(10))
    }
}
