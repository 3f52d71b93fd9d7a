import HotpatchFixtures
import XCTest

extension AgentTestHost {
    /// What the victim prints at hotpatch level 1.
    static let level1Output = "parse_length(100)=64 banner=2"
}

extension XCTestCase {
    /// Waits until `victim` prints a line starting with `expected`; fails naming its last line if not.
    func waitForOutput(_ victim: RunningProcess, _ expected: String, timeout: Double = 10,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        do {
            _ = try victim.waitForLine(timeout: timeout) { $0.hasPrefix(expected) }
        } catch {
            XCTFail("PID \(victim.pid) never printed \(expected): last line \(victim.history.last ?? "none")", file: file, line: line)
            throw error
        }
    }
}
