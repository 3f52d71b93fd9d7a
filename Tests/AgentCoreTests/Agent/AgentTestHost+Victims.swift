import AgentProtocol
import HotpatchFixtures
import XCTest

extension AgentTestHost {
    /// What the victim prints at hotpatch level 1.
    static let level1Output = "parse_length(100)=64 banner=2"
}

extension AgentTestHost {
    /// Whether the agent lists every one of `victims` as patched. Other suites' victims share the
    /// build-id and may run at the same time, so counts of patched processes are not compared.
    func listsAsPatched(_ victims: [RunningProcess]) -> Bool {
        let patched = Set(processes().filter { $0.state == .patched }.map(\.pid))
        return victims.allSatisfy { patched.contains($0.pid) }
    }
}

extension XCTestCase {
    /// A host whose agent accepted index version 1 and applied hotpatch level 1 to one running victim.
    func hostWithPatchedVictim(_ name: String) throws -> (host: AgentTestHost, victim: RunningProcess) {
        let host = try AgentTestHost(name: name)
        try host.addHotpatch(level: 1)
        try host.publish()
        let victim = try host.startVictim()
        try host.startAgent()
        try victim.expectBehaviour(AgentTestHost.level1Output)
        try host.waitForStatus("patched") { _ in host.listsAsPatched([victim]) }
        return (host, victim)
    }
}

/// What a victim prints about its behaviour (`parse_length(100)=… banner=…`), as test assertions.
extension RunningProcess {
    /// Waits until the victim prints a line starting with `expected`; fails with its last line if not.
    func expectBehaviour(_ expected: String, timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line) throws {
        do {
            _ = try waitForLine(timeout: timeout) { $0.hasPrefix(expected) }
        } catch {
            XCTFail("PID \(pid) never printed \(expected): last line \(history.last ?? "none")", file: file, line: line)
            throw error
        }
    }

    /// Reads the victim for `seconds`: every behaviour line starts with `expected`.
    func expectSteadyBehaviour(_ expected: String, seconds: Double, file: StaticString = #filePath, line: UInt = #line) throws {
        let deadline = Date().addingTimeInterval(seconds)
        _ = try freshLine()
        while Date() < deadline {
            let text = try nextLine()
            if text.hasPrefix("parse_length") { XCTAssertTrue(text.hasPrefix(expected), "PID \(pid): \(text)", file: file, line: line) }
        }
    }
}
