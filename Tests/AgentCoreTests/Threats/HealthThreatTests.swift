import AgentProtocol
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import XCTest
@testable import AgentCore

/// Issue 14, finding 2: a local user must not be able to revert a hotpatch everywhere by making a
/// patched process look as if it crashed. The attacker is `nobody` (through setpriv), the agent is
/// the real `hotpatch-agent` binary, the victims are real patched processes. Needs root.
final class HealthThreatTests: XCTestCase {
    private static let original = "parse_length(100)=100 banner=1"
    private static let level1 = "parse_length(100)=64 banner=2"
    private static let nobody = "65534"
    private static let asNobody = ["/usr/bin/setpriv", "--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups"]

    /// Whether the agent on this machine can read the kernel's fault reports (as root it can,
    /// unless the machine has no /dev/kmsg or debug.exception-trace is 0).
    private static var kernelReportsReadable: Bool {
        KernelFaultLog().availability == .reading && KernelFaultLog.kernelReportsFaults
    }

    private var started: [RunningProcess] = []

    /// This suite's own victim (victim.c, which gives up root on SIGWINCH): built with a build-id of its own, so that the agents of other
    /// suites running at the same time (which share `AgentTestHost.victimBuildID`) never patch
    /// these victims, and this suite's agent never patches theirs.
    private static let victimBuildID = "a9e0c7a1d5e54b4f8f2a0a11c0ffee14"

    private func healthVictim() throws -> String {
        try FixtureBuilder().build("dropping_victim.c", flags: ["-O0", "-g", "-pthread", "-fno-inline",
                                                                "-Wl,--build-id=0x" + Self.victimBuildID], as: "health-victim")
    }

    /// A host whose channel has one hotpatch for this suite's victim: level 1 (clamp 64, banner 2),
    /// or with `crashing`, one whose replacement traps (SIGILL inside the patch image).
    private func makeHost(_ name: String, crashing: Bool = false) throws -> AgentTestHost {
        let host = try AgentTestHost(name: name)
        let builder = FixtureBuilder()
        if crashing {
            try host.channel.addHotpatch(id: "hp-bad", baseline: AgentTestHost.firstBaseline, level: 1, target: try healthVictim(),
                                         patch: try builder.patchObject("patch_crash.c"),
                                         replacements: ["parse_length": "parse_length_crash"], description: "a broken fix")
        } else {
            try host.channel.addHotpatch(id: "hp1", baseline: AgentTestHost.firstBaseline, level: 1, target: try healthVictim(),
                                         patch: try builder.patchObject("patch_level1.c"),
                                         replacements: ["parse_length": "parse_length_fixed", "banner_version": "banner_version_fixed"],
                                         cves: ["CVE-2026-0001"], description: "clamp parse_length to 64")
        }
        try host.publish()
        return host
    }

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace: run as root")
    }

    override func tearDown() {
        started.forEach { _ = $0.stop() }
        started = []
    }

    /// Starts the suite's victim under `prefix` (a setpriv command line), which execs it in place.
    /// Starts the victim; waits for its first report unless it may die first (`awaitingOutput`
    /// false: started while a broken hotpatch is in force, the exec gate patches it before its
    /// first call, which kills it).
    private func startVictim(_ host: AgentTestHost, prefix: [String], awaitingOutput: Bool = true) throws -> RunningProcess {
        let command = prefix + [try healthVictim(), "--threads", "2", "--interval-ms", "20"]
        let victim = try RunningProcess(command[0], Array(command.dropFirst()))
        started.append(victim)
        if awaitingOutput { _ = try victim.line(timeout: 5) { $0.hasPrefix("parse_length") } }
        return victim
    }

    /// A host whose agent has patched one victim of root's, and the status then.
    private func hostWithPatchedRootVictim(_ name: String) throws -> (AgentTestHost, RunningProcess, AgentStatus) {
        let host = try makeHost(name)
        let rootVictim = try startVictim(host, prefix: [])
        try host.startAgent()
        try rootVictim.expectBehaviour(Self.level1)
        let status = try host.waitForStatus("root victim patched") { $0.processes.patched == 1 }
        return (host, rootVictim, status)
    }

    private func waitForDeath(_ victim: RunningProcess, timeout: Double = 10) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while victim.isAlive && Date() < deadline { usleep(10_000) }
        return victim.waitStatus.map { $0 & 0x7f }
    }

    /// The agent's "ignored" line for `pid`, waited for.
    private func ignoredLine(_ host: AgentTestHost, pid: Int32, timeout: Double = 10) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = host.logLines(containing: "event=health-ignored ").first(where: { $0.contains("target.pid=\(pid) ") }) {
                return line
            }
            usleep(20_000)
        }
        throw FixtureError.timeout("no health-ignored line for PID \(pid)\n--- agent log ---\n\(host.logTail())")
    }

    /// Nothing was quarantined, the verdict is `verdict`, and no history entry says otherwise.
    private func assertNothingQuarantined(_ host: AgentTestHost, verdict: Verdict,
                                          file: StaticString = #filePath, line: UInt = #line) throws {
        let status = try XCTUnwrap(host.status(), file: file, line: line)
        XCTAssertFalse(status.reasons.contains { $0.message.contains("quarantined") }, "\(status.reasons)", file: file, line: line)
        XCTAssertEqual(status.verdict, verdict, "\(status.reasons)", file: file, line: line)
        let history = try host.send(.history).history ?? []
        XCTAssertFalse(history.contains { $0.event == "quarantined" }, "\(history)", file: file, line: line)
        XCTAssertTrue(host.logLines(containing: "Quarantined hotpatch").isEmpty, host.logTail(), file: file, line: line)
    }

    // MARK: The attack of the finding

    func testNobodySignallingTheirOwnPatchedProcess_byAnyMeans_revertsNothingAndQuarantinesNothing() throws {
        let (host, rootVictim, before) = try hostWithPatchedRootVictim("health-user-signals")
        let sender = try FixtureBuilder().build("signal_sender.c", flags: ["-O1"], as: "signal_sender")

        let attacks: [(way: String, signal: Int32)] = [
            ("kill", SIGSEGV), ("tgkill", SIGSEGV), ("sigqueue", SIGSEGV),
            ("kill", SIGBUS), ("kill", SIGILL), ("kill", SIGFPE), ("kill", SIGABRT),
        ]
        for attack in attacks {
            let victim = try startVictim(host, prefix: Self.asNobody)
            try victim.expectBehaviour(Self.level1)
            try host.waitForStatus("nobody's victim patched") { $0.processes.patched == 2 }
            var arguments = [attack.way, "\(victim.pid)"]
            if attack.way == "tgkill" {
                // A worker thread, as a crash in the patched function would hit.
                let worker = try XCTUnwrap(try ProcFS.threadIDs(of: ProcessID(victim.pid)).first { $0.rawValue != victim.pid })
                arguments.append("\(worker.rawValue)")
            }
            arguments.append("\(attack.signal)")
            let sent = try ChildProcess.run(Self.asNobody[0], Array(Self.asNobody.dropFirst()) + [sender] + arguments)
            XCTAssertEqual(sent.status, 0, "\(attack): \(String(decoding: sent.errorOutput, as: UTF8.self))")
            XCTAssertEqual(waitForDeath(victim), attack.signal, "\(attack)")

            let line = try ignoredLine(host, pid: victim.pid)
            XCTAssertTrue(line.hasPrefix("warning "), line)
            XCTAssertTrue(line.contains("nothing reverted or quarantined"), line)
            XCTAssertTrue(line.hasSuffix("target.uid=\(Self.nobody)"), line)
            XCTAssertTrue(line.contains("target.signal=\(attack.signal) "), line)
            XCTAssertTrue(line.contains(attack.signal == SIGABRT ? "not a fault" : "uids real \(Self.nobody)"), line)
        }
        try rootVictim.expectSteadyBehaviour(Self.level1, seconds: 1.5)
        try assertNothingQuarantined(host, verdict: before.verdict)
        XCTAssertEqual(host.status()?.processes.patched, 1, "root's victim is still patched")
    }

    func testASetUserIDStyleProcess_runByNobody_isSignalledByNobody_andCountsForNothing() throws {
        // Real uid nobody, effective uid root: what a user running a set-user-ID root program gets.
        let (host, rootVictim, before) = try hostWithPatchedRootVictim("health-setuid")
        let victim = try startVictim(host, prefix: ["/usr/bin/setpriv", "--ruid=\(Self.nobody)", "--euid=0"])
        try victim.expectBehaviour(Self.level1)
        try host.waitForStatus("set-user-ID victim patched") { $0.processes.patched == 2 }

        let sent = try ChildProcess.run(Self.asNobody[0], Array(Self.asNobody.dropFirst()) + ["/bin/kill", "-SEGV", "\(victim.pid)"])
        XCTAssertEqual(sent.status, 0, String(decoding: sent.errorOutput, as: UTF8.self))
        XCTAssertEqual(waitForDeath(victim), SIGSEGV)
        let line = try ignoredLine(host, pid: victim.pid)
        XCTAssertTrue(line.contains("uids real \(Self.nobody), effective 0"), line)
        try rootVictim.expectSteadyBehaviour(Self.level1, seconds: 1)
        try assertNothingQuarantined(host, verdict: before.verdict)
    }

    func testARootProcessThatDropsToNobodyAfterItWasPatched_isSignalledByNobody_andCountsForNothing() throws {
        let (host, rootVictim, before) = try hostWithPatchedRootVictim("health-drop")
        let victim = try startVictim(host, prefix: [])
        try victim.expectBehaviour(Self.level1)
        try host.waitForStatus("second root victim patched") { $0.processes.patched == 2 }
        victim.signal(SIGWINCH)
        let deadline = Date().addingTimeInterval(5)
        while ProcessCredentials.read(ProcessID(victim.pid))?.real != 65534, Date() < deadline { usleep(10_000) }
        XCTAssertEqual(ProcessCredentials.read(ProcessID(victim.pid))?.isRootOnly, false, "the victim gave up root")
        // A pass of the agent over every process (what each poll does) sees it as it is now.
        XCTAssertTrue(try host.send(.check).ok)

        let sent = try ChildProcess.run(Self.asNobody[0], Array(Self.asNobody.dropFirst()) + ["/bin/kill", "-SEGV", "\(victim.pid)"])
        XCTAssertEqual(sent.status, 0, String(decoding: sent.errorOutput, as: UTF8.self))
        XCTAssertEqual(waitForDeath(victim), SIGSEGV)
        let line = try ignoredLine(host, pid: victim.pid)
        XCTAssertTrue(line.contains("uids real \(Self.nobody), effective \(Self.nobody)"), host.logTail())
        try rootVictim.expectSteadyBehaviour(Self.level1, seconds: 1)
        try assertNothingQuarantined(host, verdict: before.verdict)
    }

    func testARealFaultInTheHotpatch_ofNobodysProcess_doesNotCount() throws {
        // A user can make a process of their own fault anywhere (ptrace, LD_PRELOAD): even a real
        // crash inside the patch is no evidence when the process is theirs.
        let host = try makeHost("health-user-crash", crashing: true)
        try host.startAgent()
        let before = try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil }
        let victim = try startVictim(host, prefix: Self.asNobody, awaitingOutput: false)
        XCTAssertEqual(waitForDeath(victim, timeout: 15), SIGILL, "the broken hotpatch kills nobody's victim")
        let line = try ignoredLine(host, pid: victim.pid)
        XCTAssertTrue(line.contains("uids real \(Self.nobody)"), line)
        try assertNothingQuarantined(host, verdict: before.verdict)
    }

    // MARK: What the kernel must confirm

    func testRootSendingSEGVToARootProcess_isNoFault_andCountsOnlyWhereTheKernelLogCannotBeRead() throws {
        let host = try makeHost("health-root-kill")
        let killed = try startVictim(host, prefix: [])
        let bystander = try startVictim(host, prefix: [])
        try host.startAgent()
        try killed.expectBehaviour(Self.level1)
        try bystander.expectBehaviour(Self.level1)
        let before = try host.waitForStatus("both patched") { $0.processes.patched == 2 }

        killed.signal(SIGSEGV)
        XCTAssertEqual(waitForDeath(killed), SIGSEGV)
        if Self.kernelReportsReadable {
            let line = try ignoredLine(host, pid: killed.pid)
            XCTAssertTrue(line.contains("the kernel reported no fault in it"), line)
            try bystander.expectSteadyBehaviour(Self.level1, seconds: 1.5)
            try assertNothingQuarantined(host, verdict: before.verdict)
        } else {
            // Without the kernel's witness only rules 1-3 apply: a root-only process's fault signal counts.
            let status = try host.waitForStatus("quarantined") { status in status.reasons.contains { $0.message.contains("quarantined") } }
            XCTAssertEqual(status.verdict, .exposed)
            XCTAssertFalse(host.logLines(containing: "not confirmed").isEmpty, host.logTail())
            try bystander.expectBehaviour(Self.original)
        }
    }

    func testARealFaultInTheHotpatch_ofARootProcessPatchedAtItsStart_quarantinesToo() throws {
        // The exec gate patches a process started while the broken fix is in force before its
        // first call, which kills it at once: its user ids, read while it was held, still count.
        let host = try makeHost("health-root-crash-at-start", crashing: true)
        try host.startAgent()
        _ = try host.waitForStatus("first cycle") { $0.channel.lastCheck != nil && $0.execGate?.mode == "fanotify" }
        try host.waitForStatus("the target watched") { _ in !host.logLines(containing: "Watching 1 file").isEmpty }
        let victim = try startVictim(host, prefix: [], awaitingOutput: false)
        XCTAssertEqual(waitForDeath(victim, timeout: 15), SIGILL)
        let status = try host.waitForStatus("quarantined") { status in status.reasons.contains { $0.message.contains("quarantined") } }
        XCTAssertEqual(status.verdict, .exposed)
        XCTAssertEqual(status.execGate?.patched, 1, "patched at its start, not by a later look")
        XCTAssertNotNil(host.logLines(containing: "Quarantined hotpatch hp-bad").first, host.logTail())
    }

    func testARealFaultInTheHotpatch_ofARootProcess_stillQuarantines_withTheKernelsReportAsReason() throws {
        let host = try makeHost("health-root-crash", crashing: true)
        let victim = try startVictim(host, prefix: [])
        try host.startAgent()
        XCTAssertEqual(waitForDeath(victim, timeout: 15), SIGILL)
        let status = try host.waitForStatus("quarantined") { status in status.reasons.contains { $0.message.contains("quarantined") } }
        XCTAssertEqual(status.verdict, .exposed)
        let quarantine = try XCTUnwrap(host.logLines(containing: "Quarantined hotpatch hp-bad").first, host.logTail())
        if Self.kernelReportsReadable {
            XCTAssertTrue(quarantine.contains("the kernel reported a trap invalid opcode"), quarantine)
            XCTAssertTrue(quarantine.contains("inside"), quarantine)
        } else {
            XCTAssertTrue(quarantine.contains("not confirmed"), quarantine)
        }
    }
}
