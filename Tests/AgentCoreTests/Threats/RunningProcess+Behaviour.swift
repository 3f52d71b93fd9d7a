import HotpatchFixtures
import XCTest

/// What a victim prints about its behaviour (`parse_length(100)=… banner=…`), as test assertions.
/// (AgentIntegrationTests keeps private copies of these two; they can move here.)
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
