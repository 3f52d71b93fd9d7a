@testable import AgentCore
import Engine
import Glibc
import LinuxSystem
import Testing

/// The exec gate starts only with its watchdog: without one, a hung agent could hold every opener
/// of a targeted file for as long as it lives.
@Suite struct ExecGateStartTests {
    @Test func gate_whenItsWatchdogCannotStart_isOff_namingWhy_andMarksNothing() throws {
        let gate = ExecGate(enabled: true) { () throws(SystemError) -> HangWatchdog in
            throw SystemError(call: "fork", errno: EAGAIN, subject: "the watchdog process")
        }
        defer { gate.stop() }
        guard case let .off(reason) = gate.mode else {
            Issue.record("the gate started without its watchdog")
            return
        }
        try #require(!reason.contains("permission events are unavailable"),
                     "fanotify permission events are unavailable here; the watchdog's case cannot be tested: \(reason)")
        #expect(reason.contains("watchdog"))
        #expect(reason.contains("fork"))
        #expect(reason.contains(String(cString: strerror(EAGAIN))))
        let file = "/proc/self/exe"
        #expect(gate.add([file]).isEmpty)
        #expect(gate.markedCount == 0)
    }

    @Test func gate_withItsWatchdog_startsAndStopsCleanly() throws {
        let gate = ExecGate(enabled: true)
        if case let .off(reason) = gate.mode {
            try #require(reason.contains("permission events are unavailable"), "off for another reason: \(reason)")
            return
        }
        #expect(gate.mode == .fanotify)
        gate.stop()
    }
}
