import AgentProtocol
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import XCTest

/// The real `hotpatch-agent`, `agentctl` and `hotpatch-pack` binaries on real processes, a real
/// signed channel and the real control socket. Needs root (ptrace). Each test has its own host
/// folder and its own victims; the victims' build-id is this suite's alone.
final class AgentIntegrationTests: XCTestCase {
    private static let original = "parse_length(100)=100 banner=1"
    private static let level1 = "parse_length(100)=64 banner=2"
    private static let level2 = "parse_length(100)=32 banner=1"

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace: run as root")
    }

    // MARK: Applying

    func testAgent_appliesHotpatchToRunningAndNewProcesses_andLevel2ReplacesLevel1() throws {
        let host = try AgentTestHost(name: "apply")
        try host.publish()
        let running = try host.startVictim()
        let agentPID = try host.startAgent().pid
        let first = try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        XCTAssertEqual(first.baseline.active, AgentTestHost.firstBaseline, "the baseline already on disk is adopted without a reboot")
        XCTAssertEqual(first.verdict, .upToDate)
        XCTAssertNil(first.hotpatch)

        try host.addHotpatch(level: 1)
        try host.publish()
        try running.expectBehaviour(Self.level1)
        let started = try host.startVictim()
        try started.expectBehaviour(Self.level1, timeout: 5)
        let patched = try host.waitForStatus("both patched at level 1") { $0.processes.patched == 2 && $0.hotpatch?.level == 1 }
        XCTAssertEqual(patched.verdict, .upToDate)
        XCTAssertEqual(patched.hotpatch?.id, "hp1")
        XCTAssertEqual(patched.hotpatch?.cves, ["CVE-2026-0001"])
        XCTAssertFalse(patched.reboot.required, "a hotpatch alone never asks for a reboot")
        XCTAssertFalse(FileManager.default.fileExists(atPath: host.rebootRequiredFile))
        let entries = host.processes().filter { [running.pid, started.pid].contains($0.pid) }
        XCTAssertEqual(entries.map(\.state), [.patched, .patched])
        XCTAssertTrue(entries.allSatisfy { ($0.pauseUsec ?? 0) > 0 }, "\(entries)")
        XCTAssertFalse(host.processes().contains { $0.pid == agentPID }, "the agent never lists itself")

        try host.addHotpatch(level: 2)
        try host.publish()
        try running.expectBehaviour(Self.level2)
        try started.expectBehaviour(Self.level2)
        let replaced = try host.waitForStatus("level 2 everywhere") { $0.hotpatch?.level == 2 && $0.processes.patched == 2 }
        XCTAssertEqual(replaced.hotpatch?.id, "hp2")
        XCTAssertEqual(replaced.verdict, .upToDate)

        XCTAssertEqual(host.stopAgent(), 0, "SIGTERM stops the agent cleanly")
        try running.expectSteadyBehaviour(Self.level2, seconds: 0.3)
        XCTAssertTrue(running.isAlive && started.isAlive)
    }

    func testIdleAgent_unmapsTheCodeItRanOnce_afterAQuietSpell_andAnswersOn() throws {
        let host = try AgentTestHost(name: "idle-memory")
        try host.publish()
        // Polled each second, the agent is never quiet for long: an hour, as on a real host.
        try host.startAgent(["--poll-interval", "1h"])
        _ = try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        // Measured right after the status answer: start, first cycle and answer are mapped.
        try host.expectCodeReleasedWhenQuiet()
        // The code maps back in from the page cache as it runs.
        XCTAssertNotNil(host.status(), "the agent still answers")
        XCTAssertEqual(host.stopAgent(), 0)
    }

    func testOnce_patchesAndExitsZero_thenTwoWhenABaselineAwaitsReboot() throws {
        let host = try AgentTestHost(name: "once")
        try host.addHotpatch(level: 1)
        try host.publish()
        let victim = try host.startVictim()
        let agent = try host.startAgent(["--once"])
        XCTAssertEqual(agent.wait(timeout: 60), 0, host.logTail())
        try victim.expectBehaviour(Self.level1, timeout: 2)

        try host.addBaseline(id: "base-2", content: "release 2\n")
        try host.publish()
        let second = try host.startAgent(["--once"])
        XCTAssertEqual(second.wait(timeout: 60), 2, host.logTail())
        XCTAssertTrue(FileManager.default.fileExists(atPath: host.rebootRequiredFile))
    }

    // MARK: Baselines

    func testBaseline_installsFilesAndRequestsReboot_whileHotpatchStaysApplied() throws {
        let (host, victim) = try hostWithPatchedVictim("baseline")
        XCTAssertFalse(FileManager.default.fileExists(atPath: host.rebootRequiredFile))

        try host.addBaseline(id: "base-2", content: "release 2\n")
        try host.publish()
        let status = try host.waitForStatus("reboot requested") { $0.reboot.required }
        XCTAssertEqual(status.verdict, .rebootRequired)
        XCTAssertEqual(status.baseline.active, AgentTestHost.firstBaseline, "the new baseline is active only after the reboot")
        XCTAssertEqual(status.baseline.pending, ["base-2"])
        XCTAssertTrue(status.reboot.reasons.contains { $0.contains("base-2") }, "\(status.reboot.reasons)")
        XCTAssertEqual(try String(contentsOfFile: host.installedDirectory + "/release", encoding: .utf8), "release 2\n")
        let flag = try String(contentsOfFile: host.rebootRequiredFile, encoding: .utf8)
        XCTAssertTrue(flag.contains("base-2"), flag)
        let packages = try String(contentsOfFile: host.rebootRequiredFile + ".pkgs", encoding: .utf8)
        // Package names, as Debian's tools write them; a baseline of plain files names the agent's package.
        XCTAssertEqual(packages.split(separator: "\n").map(String.init), ["hotpatch-agent"])
        XCTAssertEqual(status.processes.patched, 1, "the running hotpatch stays until the reboot")
        try victim.expectSteadyBehaviour(Self.level1, seconds: 0.2)
    }

    // MARK: Health

    func testCrashAfterPatch_revertsAndQuarantines_untilANewerLevelArrives() throws {
        let host = try AgentTestHost(name: "crash")
        try host.addCrashingHotpatch(id: "hp-bad", level: 1)
        try host.publish()
        let victim = try host.startVictim()
        try host.startAgent()
        let deadline = Date().addingTimeInterval(15)
        while victim.isAlive && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(victim.isAlive, "the broken hotpatch kills the victim")
        XCTAssertEqual((victim.waitStatus ?? 0) & 0x7f, SIGILL)
        let status = try host.waitForStatus("quarantined") { status in
            status.reasons.contains { $0.message.contains("quarantined") }
        }
        XCTAssertEqual(status.verdict, .exposed)
        let history = try host.send(.history).history ?? []
        XCTAssertTrue(history.contains { $0.event == "quarantined" && $0.release == "hp-bad" }, "\(history)")
        XCTAssertFalse(host.logLines(containing: "Quarantined hotpatch hp-bad").isEmpty, host.logTail())
        XCTAssertTrue(host.logLines(containing: "Quarantined hotpatch hp-bad").allSatisfy { $0.contains("error") }, host.logTail())

        let newcomer = try host.startVictim()
        try newcomer.expectSteadyBehaviour(Self.original, seconds: 1.5)
        XCTAssertTrue(newcomer.isAlive, "a quarantined hotpatch is not applied to new processes")

        try host.addHotpatch(level: 2)
        try host.publish()
        try newcomer.expectBehaviour(Self.level2)
        let fixed = try host.waitForStatus("newer level applied") { $0.hotpatch?.id == "hp2" && $0.processes.patched == 1 }
        XCTAssertEqual(fixed.verdict, .exposed, "the quarantine is still reported until an administrator lifts it")
    }

    // MARK: Enrollment and the control socket

    func testUnenroll_revertsAndEnroll_reapplies_onlyRootMayChange() throws {
        let (host, victim) = try hostWithPatchedVictim("enroll")

        let nobody: uid_t = 65534
        let refused = try host.agentctl(["unenroll"], asUser: nobody)
        XCTAssertEqual(refused.status, 77, refused.output)
        XCTAssertTrue(refused.output.contains("root"), refused.output)
        let read = try host.agentctl(["status", "--json"], asUser: nobody)
        XCTAssertEqual(read.status, 0, read.output)
        let decoded = try JSONDecoder().decode(AgentStatus.self, from: Data(read.output.utf8))
        XCTAssertEqual(decoded.verdict, .upToDate)
        try victim.expectSteadyBehaviour(Self.level1, seconds: 0.2)

        let unenroll = try host.agentctl(["unenroll"])
        XCTAssertEqual(unenroll.status, 0, unenroll.output)
        try victim.expectBehaviour(Self.original)
        XCTAssertEqual(try host.waitForStatus("unenrolled") { !$0.enrolled }.verdict, .unenrolled)

        // Persisted: a restarted agent stays unenrolled and applies nothing.
        XCTAssertEqual(host.stopAgent(), 0)
        try host.startAgent()
        try host.waitForStatus("restarted") { $0.channel.lastCheck != nil && !$0.enrolled }
        try victim.expectSteadyBehaviour(Self.original, seconds: 0.5)

        let enroll = try host.agentctl(["enroll"])
        XCTAssertEqual(enroll.status, 0, enroll.output)
        try victim.expectBehaviour(Self.level1)
        XCTAssertEqual(try host.waitForStatus("enrolled") { $0.enrolled && $0.processes.patched == 1 }.verdict, .upToDate)
    }

    func testControlSocket_answersMalformedAndOversizedRequestsWithErrors_andKeepsServing() throws {
        let host = try AgentTestHost(name: "socket")
        try host.publish()
        try host.startAgent()
        try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        let client = ControlClient(socketPath: host.socket, timeoutSeconds: 10)
        for garbage in ["{not json\n", "{\"command\":\"format-disk\"}\n", "\n", String(repeating: "x", count: 200_000) + "\n"] {
            let reply = try? client.exchange(Array(garbage.utf8))
            if let reply {
                let response = try JSONDecoder().decode(ControlResponse.self, from: Data(reply))
                XCTAssertFalse(response.ok)
                XCTAssertNotNil(response.error)
            }
            XCTAssertNotNil(host.status(), "the agent still answers after \(garbage.prefix(30))")
        }
        let unknownRelease = try host.agentctl(["apply", "no-such-release"])
        XCTAssertNotEqual(unknownRelease.status, 0)
        XCTAssertTrue(unknownRelease.output.contains("no-such-release"), unknownRelease.output)
    }

    // MARK: Restarts, kills and state

    func testRestart_readsWhatIsAppliedFromTheProcesses_withoutPatchingAgain() throws {
        let (host, victim) = try hostWithPatchedVictim("restart")
        host.agent?.kill(SIGKILL)
        let appliedBefore = host.logLines(containing: "Applied hotpatch hp1").count

        try host.startAgent()
        let status = try host.waitForStatus("restarted") { $0.channel.lastCheck != nil && $0.processes.patched == 1 }
        XCTAssertEqual(status.hotpatch?.id, "hp1")
        XCTAssertEqual(status.verdict, .upToDate)
        XCTAssertEqual(host.logLines(containing: "Applied hotpatch hp1").count, appliedBefore, "the second agent found the patch in place")
        try victim.expectSteadyBehaviour(Self.level1, seconds: 0.2)
    }

    func testCorruptStateFile_isReportedAndKeptAsIs_andNothingIsPatched() throws {
        let host = try AgentTestHost(name: "corrupt")
        try host.publish()
        try host.startAgent()
        try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        XCTAssertEqual(host.stopAgent(), 0)
        let stateFile = host.stateDirectory + "/state.json"
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: stateFile)))
        bytes[bytes.count / 2] ^= 0x20
        try Data(bytes).write(to: URL(fileURLWithPath: stateFile))

        try host.addHotpatch(level: 1)
        try host.publish()
        let victim = try host.startVictim()
        try host.startAgent()
        let status = try host.waitForStatus("state problem reported") { status in
            status.reasons.contains { $0.message.contains("state file") }
        }
        XCTAssertEqual(status.verdict, .exposed)
        try victim.expectSteadyBehaviour(Self.original, seconds: 1)
        XCTAssertEqual(try Array(Data(contentsOf: URL(fileURLWithPath: stateFile))), bytes, "a corrupt state file is never silently reset")
        XCTAssertNotEqual(try host.agentctl(["unenroll"]).status, 0, "no change is accepted on top of an unreadable state")
    }

    /// The fields of /proc/PID/task/TID/status, by name.
    private static func threadStatus(pid: Int32, thread: String) throws -> [String: String] {
        let text = try String(contentsOfFile: "/proc/\(pid)/task/\(thread)/status", encoding: .utf8)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// `kill -9` of the agent at random moments while it starts and patches: no target crashes, none
    /// is left stopped or traced, and the next agent brings every process to the desired level.
    /// HOTPATCH_AGENT_SOAK_ITERATIONS sets the count (default 50; the documented long run: 1000).
    func testKill9AtRandomMoments_leavesNoTargetCrashedStoppedOrTraced() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["HOTPATCH_AGENT_SOAK_ITERATIONS"] ?? "") ?? 50
        let host = try AgentTestHost(name: "kill9")
        try host.addHotpatch(level: 1)
        try host.addHotpatch(level: 2)
        try host.publish()
        let longLived = try (0..<2).map { _ in try host.startVictim(threads: 4) }
        // Calibration: how long this agent takes from its start to every victim patched; the kills
        // then land between half of that and a little after it, where the patching happens.
        let calibrationStart = Date()
        try host.startAgent()
        try host.waitForStatus("calibration", timeout: 30) { $0.processes.patched == 2 }
        let window = UInt32(Date().timeIntervalSince(calibrationStart) * 1.3 * 1_000_000)
        host.agent?.kill(SIGKILL)
        var outcomes: [String: Int] = [:]
        var generator = SystemRandomNumberGenerator()
        for iteration in 0..<iterations {
            let fresh = try (0..<2).map { _ in try host.startVictim(threads: 2) }
            let agent = try host.startAgent()
            usleep(UInt32.random(in: window * 5 / 13...window, using: &generator))
            agent.kill(SIGKILL)
            for victim in longLived + fresh {
                XCTAssertTrue(victim.isAlive, "iteration \(iteration): PID \(victim.pid) died (wait status \(victim.waitStatus.map { String($0) } ?? "?"): signal \((victim.waitStatus ?? 0) & 0x7f))\n\(host.logTail())")
                for thread in try ProcFS.threadIDs(of: ProcessID(victim.pid)) {
                    let fields = try Self.threadStatus(pid: victim.pid, thread: "\(thread)")
                    XCTAssertEqual(fields["TracerPid"], "0", "iteration \(iteration): thread \(thread) of \(victim.pid) still traced")
                    XCTAssertFalse(fields["State"]?.hasPrefix("t") ?? true, "iteration \(iteration): thread \(thread) of \(victim.pid) left stopped")
                    XCTAssertFalse(fields["State"]?.hasPrefix("T") ?? true, "iteration \(iteration): thread \(thread) of \(victim.pid) left stopped")
                }
            }
            let patched = try fresh.filter { try $0.freshLine().hasPrefix(Self.level2) }.count
            outcomes["\(patched) of 2 new victims patched", default: 0] += 1
            fresh.forEach { $0.stop() }
            if testRun?.failureCount ?? 0 > 0 { break }
        }
        print("kill -9 soak: \(iterations) kills \(window * 5 / 13_000)-\(window / 1000) ms after the agent's start; \(outcomes.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: ", "))")

        let last = try host.startAgent(["--once"])
        XCTAssertEqual(last.wait(timeout: 60), 0, host.logTail())
        for victim in longLived {
            try victim.expectBehaviour(Self.level2, timeout: 3)
            XCTAssertTrue(victim.isAlive)
        }
    }
}
