import AgentProtocol
import Foundation
import Glibc
import HotpatchFixtures
import XCTest

/// A local unprivileged user against the real `hotpatch-agent` and `agentctl` over the real control
/// socket (mode 0666): holding connections open, reconnecting as fast as they are closed, dripping
/// bytes, spreading over several uids. Root must always get an answer, the attacker gets "busy"
/// (exit 75), and the journal gets a handful of lines, not one per refusal.
final class ControlThreatTests: XCTestCase {
    private let nobody: uid_t = 65534

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "runs the attacker as nobody through setpriv: run as root")
    }

    private func runningAgent(_ name: String) throws -> AgentTestHost {
        let host = try AgentTestHost(name: name)
        try host.publish()
        try host.startAgent()
        try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        return host
    }

    /// Root's `agentctl status` answers, and within a few seconds.
    private func assertRootIsAnswered(_ host: AgentTestHost, file: StaticString = #filePath, line: UInt = #line) throws {
        let started = Date()
        let run = try host.agentctl(["status"])
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(run.status, 0, run.output, file: file, line: line)
        XCTAssertTrue(run.output.hasPrefix("Up to date"), run.output, file: file, line: line)
        XCTAssertLessThan(seconds, 10, "root waited \(seconds) s", file: file, line: line)
    }

    private func assertNobodyIsTurnedAwayBusy(_ host: AgentTestHost, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try host.agentctl(["status"], asUser: nobody)
        XCTAssertEqual(run.status, 75, run.output, file: file, line: line)
        XCTAssertEqual(run.output, "agentctl: agent busy: uid 65534 already has 4 control connections open; try again\n",
                       file: file, line: line)
    }

    private func holdConnections(count: Int) throws {
        let host = try runningAgent("control-hold-\(count)")
        let hostile = try HostileControlClient(socket: host.socket, count: count, uid: nobody, reconnect: true)
        try assertRootIsAnswered(host)
        let burst = try hostile.burst()
        XCTAssertEqual(burst.held, 4, "one user holds at most 4 connections")
        XCTAssertEqual(burst.refused, count - 4)
        XCTAssertTrue(burst.firstAnswer.contains("agent busy: uid 65534 already has 4 control connections open"), burst.firstAnswer)
        try assertNobodyIsTurnedAwayBusy(host)
        // Longer than the 5 s request timeout: the held connections are dropped and re-opened at once.
        Thread.sleep(forTimeInterval: 6)
        try assertRootIsAnswered(host)
        let refusedInAll = try hostile.stop()
        XCTAssertGreaterThan(refusedInAll, count - 4)

        XCTAssertEqual(host.stopAgent(), 0, "the agent stops cleanly after the attack")
        let warnings = host.logLines(containing: "control connection")
        XCTAssertGreaterThanOrEqual(warnings.count, 1, "refusals are logged")
        XCTAssertLessThanOrEqual(warnings.count, 4, "\(refusedInAll) refusals made \(warnings.count) log lines:\n\(warnings.joined(separator: "\n"))")
        XCTAssertTrue(warnings.allSatisfy { $0.contains("65534") }, warnings.joined(separator: "\n"))
    }

    func testNobodyHolding32Connections_cannotLockRootOut() throws {
        try holdConnections(count: 32)
    }

    func testNobodyHolding200ConnectionsAndReopeningThem_cannotLockRootOut_norFloodTheLog() throws {
        try holdConnections(count: 200)
    }

    func testNobodyDrippingBytesWithoutANewline_isDroppedAtTheRequestDeadline() throws {
        let host = try runningAgent("control-drip")
        let hostile = try HostileControlClient(socket: host.socket, count: 4, uid: nobody, drip: true)
        try assertRootIsAnswered(host)
        XCTAssertEqual(try hostile.burst().held, 4)

        // A byte a second never extends the 5 s a client has to send its whole request.
        Thread.sleep(forTimeInterval: 8)
        XCTAssertEqual(try hostile.stop(), 4, "each dripping connection was closed by the agent")
        try assertRootIsAnswered(host)
    }

    func testUsersSpreadOverManyUIDs_cannotTakeRootsReservedPlaces() throws {
        let host = try runningAgent("control-uids")
        // Ten users, each re-opening what is dropped.
        let hostiles = try (uid_t(65525)...65534).map { try HostileControlClient(socket: host.socket, count: 4, uid: $0, reconnect: true) }
        defer { hostiles.forEach { _ = try? $0.stop() } }
        try assertRootIsAnswered(host)
        let held = try hostiles.map { try $0.burst().held }.reduce(0, +)
        XCTAssertEqual(held, 24, "users other than root hold at most 24 of the 32 places")

        let another = try host.agentctl(["status"], asUser: 65524)
        XCTAssertEqual(another.status, 75, another.output)
        XCTAssertTrue(another.output.contains("agent busy: 24 control connections of other users than root already open"), another.output)
    }

    func testNobodyFloodingPrivilegedRequests_changesNothing_andCostsTheLogAFewLines() throws {
        let host = try runningAgent("control-privileged-flood")
        let hostile = try HostileControlClient(socket: host.socket, count: 4, uid: nobody, reconnect: true,
                                               request: "{\"command\":\"unenroll\"}")
        _ = try hostile.burst()
        Thread.sleep(forTimeInterval: 3)
        let sent = try hostile.stop()

        XCTAssertGreaterThan(sent, 20, "the attacker sent only \(sent) requests")
        let status = try XCTUnwrap(host.status())
        XCTAssertTrue(status.enrolled)
        try assertRootIsAnswered(host)
        XCTAssertEqual(host.stopAgent(), 0)
        let lines = host.logLines(containing: "Refused privileged control request")
        XCTAssertGreaterThanOrEqual(lines.count, 1, "refusals are logged")
        XCTAssertLessThanOrEqual(lines.count, 3, "\(sent) refused requests made \(lines.count) log lines")
    }
}
