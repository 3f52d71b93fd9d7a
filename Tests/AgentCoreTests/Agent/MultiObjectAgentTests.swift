import AgentProtocol
import Foundation
import Glibc
import HotpatchFixtures
import XCTest

/// Several objects in one release, through the real `hotpatch-pack`, channel, agent and
/// `agentctl`: levels are cumulative per object, and status says what each object runs.
final class MultiObjectAgentTests: XCTestCase {
    /// Build-ids of this suite's libraries alone, so no other suite's agent touches its processes.
    private static let buildIDs = (a: "a9e0c7a1d5e54b4f8f2a0a11c0ffee0a", b: "a9e0c7a1d5e54b4f8f2a0a11c0ffee0b")

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace: run as root")
    }

    /// Adds hotpatch `id` at `level` with one target group per (library, function, patch).
    private func addHotpatch(_ host: AgentTestHost, id: String, level: Int, _ groups: [(String, String, String)]) throws {
        var arguments = ["hotpatch", "--channel", host.channel.channel, "--id", id, "--baseline", AgentTestHost.firstBaseline,
                         "--level", "\(level)", "--description", "level \(level)"]
        for (library, function, patch) in groups {
            arguments += ["--target", library, "--patch", patch, "--replace", "\(function)=\(function)_fixed"]
        }
        try host.channel.run(arguments)
        try host.publish()
    }

    /// The agent's entry for `process`, its objects sorted by path (libA first; the agent lists
    /// them in address order).
    private func entry(_ host: AgentTestHost, _ process: RunningProcess) throws -> ProcessEntry {
        var entry = try XCTUnwrap(host.processes().first { $0.pid == process.pid }, host.logTail())
        entry.objects.sort { $0.path < $1.path }
        return entry
    }

    func testLevelNamingOnlyLibB_keepsLibAsFix_statusSaysUpToDateAndPatched_laterLevelsReplaceAndRevertRemovesAll() throws {
        let host = try AgentTestHost(name: "objects")
        let program = try TwoObjectProgram(builder: FixtureBuilder(), tag: "-agent", buildIDs: Self.buildIDs)
        let process = try RunningProcess(program.program)
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0 == "ready" }
        try process.expectBehaviour(TwoObjectProgram.original)

        try addHotpatch(host, id: "hp1", level: 1, [(program.libraryA, "a_value", program.fixA)])
        try host.startAgent()
        try process.expectBehaviour("a=101 b=3")
        try host.waitForStatus("level 1 applied") { $0.hotpatch?.level == 1 && $0.processes.patched == 1 }

        // Level 2 names libB only: libA keeps level 1's fix, and both run.
        try addHotpatch(host, id: "hp2", level: 2, [(program.libraryB, "b_value", program.fixB)])
        try process.expectBehaviour("a=101 b=201")
        // The status is live: the new plan shows as soon as the cycle takes it, the process's
        // entry once the cycle's pass has recorded it.
        let atTwo = try host.waitForStatus("level 2 in force") { status in
            status.hotpatch?.level == 2 && status.processes.patched == 1 && (try? self.entry(host, process).hotpatch) == "hp2"
        }
        XCTAssertEqual(atTwo.verdict, .upToDate, "\(atTwo.reasons)")
        XCTAssertEqual(atTwo.hotpatch?.objects.map(\.hotpatch).sorted(), ["hp1", "hp2"])
        let listed = try entry(host, process)
        XCTAssertEqual(listed.state, .patched)
        XCTAssertEqual(listed.hotpatch, "hp2")
        XCTAssertEqual(listed.objects.map(\.path), [program.libraryA, program.libraryB])
        XCTAssertEqual(listed.objects.map(\.hotpatch), ["hp1", "hp2"])
        XCTAssertEqual(listed.objects.map(\.level), [1, 2])
        let table = try host.agentctl(["processes"])
        XCTAssertTrue(table.output.contains("object \(program.libraryA): hp1 level 1"), table.output)
        _ = try process.freshLine()
        for _ in 0..<10 { XCTAssertEqual(try process.nextLine(), "a=101 b=201") }

        // --once, from a stopped daemon: up to date, the process counted as patched, nothing rewritten.
        XCTAssertEqual(host.stopAgent(), 0)
        let once = try host.startAgent(["--once"])
        XCTAssertEqual(once.wait(timeout: 60), 0, host.logTail())
        XCTAssertFalse(host.logLines(containing: "hotpatch-agent: up to date; baseline base-1; hotpatch hp2 level 2; 1 patched").isEmpty,
                       host.logTail())
        try host.startAgent()

        // Level 3 names libA again: its fix replaces level 1's; libB keeps level 2's.
        try addHotpatch(host, id: "hp3", level: 3, [(program.libraryA, "a_value", program.fixA2)])
        try process.expectBehaviour("a=301 b=201")
        try host.waitForStatus("level 3 in force") { status in
            status.hotpatch?.level == 3 && status.processes.patched == 1 && (try? self.entry(host, process).hotpatch) == "hp3"
        }
        XCTAssertEqual(try entry(host, process).objects.map(\.hotpatch), ["hp3", "hp2"])

        // Holding level 3 brings libA back to level 1's fix; holding every level removes them all.
        XCTAssertEqual(try host.agentctl(["revert", "hp3"]).status, 0)
        try process.expectBehaviour("a=101 b=201")
        for id in ["hp2", "hp1"] { XCTAssertEqual(try host.agentctl(["revert", id]).status, 0) }
        try process.expectBehaviour(TwoObjectProgram.original)
        let reverted = try host.waitForStatus("every level held") { $0.hotpatch == nil && $0.processes.patched == 0 }
        XCTAssertEqual(reverted.verdict, .upToDate, "\(reverted.reasons)")
        XCTAssertEqual(try entry(host, process).state, .unpatched)
        XCTAssertEqual(try entry(host, process).objects.map(\.hotpatch), [nil, nil])
        XCTAssertEqual(host.stopAgent(), 0)
        XCTAssertTrue(process.isAlive)
    }
}
