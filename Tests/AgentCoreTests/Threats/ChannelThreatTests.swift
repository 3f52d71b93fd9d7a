import AgentProtocol
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import XCTest

/// Issue 14, findings 3, 7 and 8, played against the real `hotpatch-agent`: whoever controls the
/// channel's mirror freezes it or takes the index away; a hostile or careless file lands in the
/// trusted-keys folder; a flag asks for an interval no clock can hold. The agent keeps the last
/// verified releases in force and says why it is exposed, refuses what it cannot trust by path,
/// keeps answering, stops promptly on SIGTERM, and never crashes on a duration.
final class ChannelThreatTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace (run as root)")
    }

    private func reasonMentioning(_ status: AgentStatus, _ text: String) -> AgentStatus.Reason? {
        status.reasons.first { $0.message.contains(text) }
    }

    /// SIGTERM, and the agent must be gone within `seconds`, with status 0.
    private func assertStopsPromptly(_ host: AgentTestHost, within seconds: Double = 5,
                                     file: StaticString = #filePath, line: UInt = #line) {
        guard let agent = host.agent else { return XCTFail("no agent running", file: file, line: line) }
        let start = Date()
        Glibc.kill(agent.pid, SIGTERM)
        let status = agent.wait(timeout: seconds)
        XCTAssertEqual(status, 0, "exit status after SIGTERM (nil: still running after \(seconds) s)\n\(host.logTail())",
                       file: file, line: line)
        if status == nil { host.agent?.kill(SIGKILL) }
        XCTAssertLessThan(Date().timeIntervalSince(start), seconds, file: file, line: line)
        _ = host.stopAgent()
    }

    // MARK: Finding 3: a vanished or frozen index

    func testIndexRemovedAfterAcceptance_isExposedWithTheReason_andThePatchStays() throws {
        let (host, victim) = try hostWithPatchedVictim("index-removed")
        try FileManager.default.removeItem(atPath: host.channel.channel + "/index.json")
        let status = try host.waitForStatus("exposed for the missing index") { status in
            status.verdict == .exposed && self.reasonMentioning(status, "channel index missing since") != nil
        }
        let reason = try XCTUnwrap(reasonMentioning(status, "channel index missing since"))
        XCTAssertTrue(reason.message.contains("keeping verified version 1 in force"), reason.message)
        XCTAssertEqual(status.hotpatch?.id, "hp1", "the verified hotpatch stays the one in force")
        XCTAssertTrue(host.listsAsPatched([victim]), "\(host.processes())")
        XCTAssertNotNil(status.channel.error, "the channel's own field names the problem too")
        _ = try victim.freshLine()
        try victim.expectBehaviour(AgentTestHost.level1Output, timeout: 2)
        let text = try host.agentctl(["status"])
        XCTAssertTrue(text.output.contains("channel index missing since"), text.output)
    }

    func testRestartWithTheIndexRemoved_patchesANewVictimFromTheStore_andSaysWhyItIsExposed() throws {
        let (host, victim) = try hostWithPatchedVictim("index-removed-restart")
        XCTAssertEqual(host.stopAgent(), 0)
        try FileManager.default.removeItem(atPath: host.channel.channel + "/index.json")
        try FileManager.default.removeItem(atPath: host.channel.channel + "/index.json.sig")

        try host.startAgent()
        let newcomer = try host.startVictim()
        try newcomer.expectBehaviour(AgentTestHost.level1Output)
        let status = try host.waitForStatus("exposed after the restart") { status in
            status.verdict == .exposed && host.listsAsPatched([victim, newcomer])
        }
        let reason = try XCTUnwrap(reasonMentioning(status, "channel index missing since"), "\(status.reasons)")
        XCTAssertTrue(reason.message.contains("keeping verified version 1 in force"), reason.message)
        XCTAssertEqual(status.hotpatch?.id, "hp1")
    }

    func testExpiredIndex_keepsTheVerifiedVersionInForce_acrossARestart() throws {
        let (host, victim) = try hostWithPatchedVictim("expired")
        // Version 2 lives for 3 s: it is accepted or not, then it expires; either way it is a freeze.
        try host.channel.publish(expiresIn: "3s")
        let status = try host.waitForStatus("exposed for the expired index", timeout: 20) { status in
            status.verdict == .exposed && self.reasonMentioning(status, "expired") != nil
        }
        let reason = try XCTUnwrap(reasonMentioning(status, "expired"))
        XCTAssertTrue(reason.message.contains("keeping verified version"), reason.message)
        XCTAssertTrue(host.listsAsPatched([victim]), "\(host.processes())")

        XCTAssertEqual(host.stopAgent(), 0)
        try host.startAgent()
        let newcomer = try host.startVictim()
        try newcomer.expectBehaviour(AgentTestHost.level1Output)
        let restarted = try host.waitForStatus("exposed after the restart") { status in
            status.verdict == .exposed && self.reasonMentioning(status, "expired") != nil
                && host.listsAsPatched([victim, newcomer])
        }
        XCTAssertTrue(reasonMentioning(restarted, "expired")?.message.contains("keeping verified version") ?? false,
                      "\(restarted.reasons)")
    }

    func testIndexRolledBackAfterARestart_isRefused_andTheNewerVersionStaysInForce() throws {
        let (host, _) = try hostWithPatchedVictim("rollback")
        let old = try Data(contentsOf: URL(fileURLWithPath: host.channel.channel + "/index.json"))
        let oldSignature = try Data(contentsOf: URL(fileURLWithPath: host.channel.channel + "/index.json.sig"))
        try host.publish()
        try host.waitForStatus("version 2 accepted") { $0.channel.version == 2 && $0.verdict == .upToDate }
        XCTAssertEqual(host.stopAgent(), 0)
        try old.write(to: URL(fileURLWithPath: host.channel.channel + "/index.json"))
        try oldSignature.write(to: URL(fileURLWithPath: host.channel.channel + "/index.json.sig"))

        try host.startAgent()
        let newcomer = try host.startVictim()
        try newcomer.expectBehaviour(AgentTestHost.level1Output)
        let status = try host.waitForStatus("rollback refused") { status in
            status.verdict == .exposed && self.reasonMentioning(status, "rollback") != nil
        }
        XCTAssertTrue(reasonMentioning(status, "rollback")?.message.contains("keeping verified version 2 in force") ?? false,
                      "\(status.reasons)")
    }

    func testNoIndexEverPublished_staysBenign() throws {
        let host = try AgentTestHost(name: "never-published")
        // `hotpatch-pack init` leaves an unsigned draft index; a channel nobody published has none.
        try FileManager.default.removeItem(atPath: host.channel.channel + "/index.json")
        try host.startAgent()
        let status = try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        XCTAssertEqual(status.verdict, .upToDate, "\(status.reasons)")
        XCTAssertNotNil(reasonMentioning(status, "no index published"), "\(status.reasons)")
    }

    // MARK: Finding 8: what lands in the trusted-keys folder

    /// Each hazard is planted, the agent started: the refusal names the path, the agent keeps
    /// answering (as root and as nobody), and SIGTERM stops it at once.
    func testHostileFilesInTheKeysFolder_areRefusedByPath_theAgentKeepsAnswering_andStopsOnSIGTERM() throws {
        let host = try AgentTestHost(name: "keys")
        try host.addHotpatch(level: 1)
        try host.publish()
        let keys = host.channel.trustedKeys
        let publisherKey = keys + "/publisher.pub"
        let hazards: [(name: String, path: String, plant: () throws -> Void, undo: () throws -> Void)] = [
            ("a FIFO", keys + "/wedge.pub", { XCTAssertEqual(mkfifo(keys + "/wedge.pub", 0o644), 0) },
             { unlink(keys + "/wedge.pub") }),
            ("a symbolic link to /dev/zero", keys + "/zero.pub", { XCTAssertEqual(symlink("/dev/zero", keys + "/zero.pub"), 0) },
             { unlink(keys + "/zero.pub") }),
            ("a character device", keys + "/device.pub",
             { XCTAssertEqual(mknod(keys + "/device.pub", S_IFCHR | 0o644, dev_t(1 << 8 | 5) /* makedev(1, 5): /dev/zero */), 0) },
             { unlink(keys + "/device.pub") }),
            ("a terabyte of zeros", keys + "/huge.pub", {
                let descriptor = open(keys + "/huge.pub", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                XCTAssertEqual(ftruncate(descriptor, 1 << 40), 0)
                close(descriptor)
            }, { unlink(keys + "/huge.pub") }),
            ("a key anyone may write", publisherKey, { chmod(publisherKey, 0o666) }, { chmod(publisherKey, 0o644) }),
            ("a folder owned by nobody, mode 0777", keys, {
                XCTAssertEqual(chown(keys, 65534, 65534), 0)
                chmod(keys, 0o777)
            }, {
                XCTAssertEqual(chown(keys, 0, 0), 0)
                chmod(keys, 0o755)
            }),
        ]
        for hazard in hazards {
            try hazard.plant()
            try host.startAgent()
            let status = try host.waitForStatus("refused \(hazard.name)") { status in
                status.verdict == .exposed && status.reasons.contains { $0.message.contains(hazard.path) }
            }
            XCTAssertNotNil(status.channel.error, hazard.name)
            let asRoot = try host.agentctl(["status"])
            XCTAssertEqual(asRoot.status, 0, "\(hazard.name): \(asRoot.output)")
            XCTAssertTrue(asRoot.output.contains(hazard.path), "\(hazard.name): \(asRoot.output)")
            let asNobody = try host.agentctl(["status", "--json"], asUser: 65534)
            XCTAssertEqual(asNobody.status, 0, "\(hazard.name): \(asNobody.output)")
            XCTAssertNotNil(host.status(), "\(hazard.name): the agent still answers after a second cycle")
            assertStopsPromptly(host)
            try hazard.undo()
        }
        // With the folder sound again, the same channel is trusted.
        try host.startAgent()
        try host.waitForStatus("trusted again") { $0.verdict == .upToDate && $0.channel.version == 1 }
        assertStopsPromptly(host)
    }

    /// Stopping is bounded even when a task is stuck where cancellation cannot reach it. The stuck
    /// task here is a SIGHUP reload reading a configuration file that is a FIFO with a silent
    /// writer (a blocking read, like the keys FIFO once was): SIGTERM must still end the agent, at
    /// the 30 s deadline, with status 1 and the reason in the log.
    func testSIGTERM_whileATaskIsStuckInABlockingRead_stopsTheAgentAtTheDeadline() throws {
        let host = try AgentTestHost(name: "stuck")
        try host.publish()
        let agent = try host.startAgent()
        try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        let configuration = host.root + "/agent.toml"
        XCTAssertEqual(unlink(configuration), 0)
        XCTAssertEqual(mkfifo(configuration, 0o600), 0)
        // O_RDWR on a FIFO never blocks on Linux; it keeps a writer that never writes.
        let writer = open(configuration, O_RDWR | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(writer, 0)
        defer { close(writer) }
        Glibc.kill(agent.pid, SIGHUP)
        usleep(500_000)
        XCTAssertNotNil(host.status(), "the control socket still answers while the reload is stuck")

        let start = Date()
        Glibc.kill(agent.pid, SIGTERM)
        let status = agent.wait(timeout: 60)
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(status, 1, "exit status (nil: still running 60 s after SIGTERM)\n\(host.logTail())")
        XCTAssertGreaterThanOrEqual(elapsed, 29, "stopped before the deadline: the stuck task was not stuck?\n\(host.logTail())")
        XCTAssertLessThan(elapsed, 40)
        XCTAssertFalse(host.logLines(containing: "Did not stop within").isEmpty, host.logTail())
        if status == nil { agent.kill(SIGKILL) }
    }

    // MARK: Finding 7: durations

    func testPollIntervalBeyondAnyClock_isRefusedAsAConfigurationError_withoutACrash() throws {
        let host = try AgentTestHost(name: "duration")
        try host.publish()
        for value in ["9223372036854775807", "0", "-1", "1e30"] {
            let agent = try host.startAgent(["--poll-interval=\(value)"])
            XCTAssertEqual(agent.wait(timeout: 20), 78, "--poll-interval \(value)\n\(host.logTail())")
            XCTAssertFalse(host.logLines(containing: "--poll-interval: poll_interval").isEmpty, host.logTail())
        }
        XCTAssertFalse(host.logLines(containing: "9223372036854775807 is out of range (1s to 3650d)").isEmpty, host.logTail())
        // From the file: the host's own flags give --poll-interval 1s, which would override it.
        try host.write("poll_interval = 9223372036854775807\n", to: host.root + "/agent.toml")
        var arguments = host.agentArguments
        let flag = try XCTUnwrap(arguments.firstIndex(of: "--poll-interval"))
        arguments.removeSubrange(flag...(flag + 1))
        let agent = try AgentProcess(binary: host.products + "/hotpatch-agent", arguments: arguments,
                                     log: host.agentLog, run: 99)
        XCTAssertEqual(agent.wait(timeout: 20), 78, host.logTail())
        XCTAssertFalse(host.logLines(containing: "agent.toml:1: poll_interval 9223372036854775807 is out of range").isEmpty,
                       host.logTail())
    }
}
