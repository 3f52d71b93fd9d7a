import Engine
import Foundation
import LinuxSystem
import XCTest

/// The running agent's code as the kernel counts it resident, for the idle-release tests.
extension AgentTestHost {
    /// The running agent executable's executable mappings, as /proc/PID/smaps shows them.
    func agentCodeMappings() throws -> [ResidentMapping] {
        let pid = try XCTUnwrap(agent?.pid, "no agent running")
        let path = "/proc/\(pid)/smaps"
        return try ProcSmapsParser.parse(Files.read(path), path: path)
            .filter { $0.mapping.path.hasSuffix("/hotpatch-agent") && $0.mapping.isExecutable }
    }

    /// Expects the running agent's resident code to fall below half of what it is now within 10 s
    /// (the release after a quiet spell); otherwise fails naming what kept it: a page of its own in
    /// the code (never dropped), or work all along (the log).
    func expectCodeReleasedWhenQuiet(file: StaticString = #filePath, line: UInt = #line) throws {
        func residentKiB() throws -> UInt64 { try agentCodeMappings().reduce(0) { $0 + $1.residentKiB } }
        let busy = try residentKiB()
        var idle = busy
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            Thread.sleep(forTimeInterval: 0.25)
            idle = try residentKiB()
            if idle < busy / 2 { return }
        }
        let code = (try? agentCodeMappings())?.map {
            "\($0.mapping.path) rss \($0.residentKiB) anon \($0.anonymousKiB) dirty \($0.privateDirtyKiB) dropable \($0.holdsOnlyFilePages)"
        } ?? []
        XCTFail("code mapped after a quiet spell: \(idle) KiB of \(busy); \(code)\n\(logTail())", file: file, line: line)
    }
}
