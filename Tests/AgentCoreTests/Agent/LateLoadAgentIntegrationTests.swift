import AgentProtocol
import Foundation
import Glibc
import HotpatchFixtures
import XCTest

/// The real `hotpatch-agent` and a running process that `dlopen`s the targeted library only after
/// the hotpatch is in force (the conformance case "a library loaded after the patch was applied").
/// Needs root. The library's build-id is this suite's alone.
final class LateLoadAgentIntegrationTests: XCTestCase {
    private static let buildID = "1a7e10ad0000400080000000000000b2"

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace: run as root")
    }

    /// Waits until the agent's log has a line containing `text`; returns those lines.
    private func waitForLog(_ host: AgentTestHost, _ text: String, timeout: Double = 15) throws -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let lines = host.logLines(containing: text)
            if !lines.isEmpty { return lines }
            usleep(20_000)
        }
        throw FixtureError.timeout("no log line with '\(text)'\n--- agent log ---\n\(host.logTail())")
    }

    func testALibraryDlopenedAfterTheHotpatchIsInForce_isPatchedAsSoonAsItIsMapped() throws {
        let host = try AgentTestHost(name: "late-load")
        let fixture = try LateLoadFixture(in: host.root, buildID: Self.buildID)
        try host.channel.addHotpatch(id: "late1", baseline: AgentTestHost.firstBaseline, level: 1, target: fixture.library,
                                     patch: try LateLoadFixture.patchObject(in: host.root),
                                     replacements: ["late_value": "late_value_fixed"], description: "late_value returns 2")
        try host.publish()
        let loader = try LateLoadFixture.start(fixture.loader, loading: fixture.library)
        // A full pass only every 10 minutes: only the watch on the library can patch the loader in time.
        try host.startAgent(["--poll-interval", "10m"])
        try host.waitForStatus("hotpatch in force") { $0.hotpatch?.id == "late1" }
        // After the first full pass (READY=1's "Started:"), nothing but the watch looks at the loader.
        _ = try waitForLog(host, "Started: ")
        _ = try waitForLog(host, "Watching 1 file that holds a targeted object")
        XCTAssertFalse(host.processes().contains { $0.pid == loader.pid }, "before its dlopen the loader maps no target")
        XCTAssertEqual(host.status()?.mappingWatch, "fanotify")

        loader.signal(SIGUSR1)
        let patchedAfter = try loader.lateValue(2, timeout: 10)
        print("library dlopened after the hotpatch: patched \(patchedAfter) µs after the dlopen call began")
        XCTAssertLessThan(patchedAfter, 1_000_000, "patched within a second of the dlopen, not at the next full pass\n\(host.logTail())")
        try host.waitForStatus("loader listed as patched") { _ in
            host.processes().contains { $0.pid == loader.pid && $0.state == .patched }
        }
        XCTAssertTrue(loader.isAlive)
        XCTAssertEqual(host.stopAgent(), 0, "SIGTERM ends the watches with the agent\n\(host.logTail())")
    }

    func testAProgramThatLinksTheLibraryStartedAfterTheHotpatch_isPatchedAsItStarts() throws {
        let host = try AgentTestHost(name: "late-start")
        let fixture = try LateLoadFixture(in: host.root, buildID: Self.buildID)
        let program = try fixture.linkedProgram(in: host.root)
        try host.channel.addHotpatch(id: "late1", baseline: AgentTestHost.firstBaseline, level: 1, target: fixture.library,
                                     patch: try LateLoadFixture.patchObject(in: host.root),
                                     replacements: ["late_value": "late_value_fixed"], description: "late_value returns 2")
        try host.publish()
        try host.startAgent(["--poll-interval", "10m"])
        _ = try waitForLog(host, "Started: ")

        let started = try RunningProcess(program)
        let patchedAfter = try started.lateValue(2, timeout: 10)
        print("program linking the library, started after the hotpatch: patched \(patchedAfter) µs after main began")
        XCTAssertLessThan(patchedAfter, 1_000_000, "patched at its start, not at the next full pass\n\(host.logTail())")
        try host.waitForStatus("listed as patched") { _ in
            host.processes().contains { $0.pid == started.pid && $0.state == .patched }
        }
    }

    func testWithoutCapSysAdmin_theAgentSaysWhyItCannotWatchTheTargetedFiles_andKeepsRunning() throws {
        let host = try AgentTestHost(name: "late-load-fallback")
        try host.publish()
        // fanotify_init needs CAP_SYS_ADMIN: take it out of the agent's bounding set.
        let agent = try AgentProcess(binary: "/usr/bin/setpriv",
                                     arguments: ["--bounding-set=-sys_admin", host.products + "/hotpatch-agent"] + host.agentArguments,
                                     log: host.agentLog, run: 1)
        defer { _ = agent.terminate() }
        let lines = try waitForLog(host, "Cannot watch the targeted files")
        XCTAssertEqual(lines.count, 1, "said once")
        XCTAssertTrue(lines[0].contains("fanotify_init failed") && lines[0].contains("EPERM"), lines[0])
        XCTAssertTrue(lines[0].contains("next full pass"), lines[0])
        let status = try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        XCTAssertEqual(status.mappingWatch, "scan")
        XCTAssertNil(agent.wait(timeout: 0.5), "the agent keeps running\n\(host.logTail())")
    }
}
