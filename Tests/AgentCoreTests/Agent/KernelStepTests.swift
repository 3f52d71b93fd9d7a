@testable import AgentCore
import Artifact
import Foundation
import HotpatchFixtures
import Logging
import Synchronization
import Testing

/// A kernel cycle that stays in its transition until the test lets it end, as a stalled one does.
final class HeldKernel: Sendable {
    private let state = Mutex<(runs: Int, holding: Bool)>((0, false))
    private let release = DispatchSemaphore(value: 0)

    var runs: Int { state.withLock { $0.runs } }
    var holding: Bool { state.withLock { $0.holding } }

    func cycle(_: Hotpatch?, _: [HotpatchRelease], _: Set<String>, _: [String: String], _: String?, _: Double) -> KernelCycleResult {
        state.withLock { $0 = ($0.runs + 1, true) }
        _ = release.wait(timeout: .now() + 30)
        state.withLock { $0.holding = false }
        return KernelCycleResult(status: nil, events: [])
    }

    /// Lets the transition in progress end.
    func letEnd() { release.signal() }

    /// Waits (10 s at most) until `condition` holds.
    func wait(until condition: (HeldKernel) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition(self), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }
}

/// The kernel's live patch step beside the processes' work: a transition the kernel holds up (up
/// to three times `kernel_transition_timeout`) keeps no cycle, rescan or new process waiting.
@Suite struct KernelStepTests {
    @Test func cycles_whileTheKernelStepWaitsForATransition_endWithoutWaitingForIt_andItRunsOnceMoreAfter() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let kernel = HeldKernel()
        let agent = Agent(configuration: AgentConfiguration.defaults(under: directory.path),
                          logger: Logger(label: "kernel-step-test") { _ in SwiftLogNoOpLogHandler() }, version: "test", workers: 1,
                          kernelCycle: kernel.cycle)
        await agent.runCycle()
        try await kernel.wait { $0.holding }
        #expect(kernel.holding, "the cycle started the kernel step")
        // The transition is still held up: another cycle and a rescan run all the same.
        await agent.runCycle()
        await agent.rescan()
        #expect(kernel.holding && kernel.runs == 1, "the cycles ended while the kernel step waited")

        // The step ends; the cycle that came meanwhile has it run once more, with the plan then in force.
        kernel.letEnd()
        try await kernel.wait { $0.runs == 2 }
        #expect(kernel.runs == 2)
        kernel.letEnd()
        await agent.kernelStepFinished()
        #expect(!kernel.holding)
        #expect(kernel.runs == 2, "one step more, not one per cycle")
    }
}
