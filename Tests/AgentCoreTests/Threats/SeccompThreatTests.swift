import AgentProtocol
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import XCTest

/// Processes that sandbox themselves after they start, against the real daemon with a hotpatch in
/// force: OpenSSH's privilege-separated child, QEMU `-sandbox` and browsers install a seccomp filter
/// a moment after exec, here one that kills the whole process on `mmap`, from a second thread with
/// `SECCOMP_FILTER_FLAG_TSYNC` (so it reaches every thread, the one the agent holds included). The
/// agent patches them at exec; it must never kill one: each ends patched (its filter came after the
/// load) or reported unpatchable with the filter named (it came before).
final class SeccompThreatTests: XCTestCase {
    private static let level1 = "parse_length(100)=64 banner=2"

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace: run as root")
    }

    /// One victim and how it sandboxes itself.
    private struct Sandboxed {
        let process: RunningProcess
        let sandbox: LateSandbox?
        var what: String {
            guard let sandbox else { return "PID \(process.pid), not sandboxed" }
            return "PID \(process.pid), \(sandbox.filter.rawValue) after \(sandbox.afterThreads) threads + \(sandbox.delayMicroseconds) µs\(sandbox.onTrace ? " or on a tracer" : "")"
        }
    }

    private static func describe(_ victim: RunningProcess) -> String {
        guard !victim.isAlive, let status = victim.waitStatus else { return "running" }
        let signal = status & 0x7f
        if signal == 0 { return "exited \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)\(signal == SIGSYS ? " (SIGSYS, \"Bad system call\": a seccomp filter killed it)" : "")"
    }

    func testAgent_neverKillsProcessesThatSandboxThemselvesAfterExec() throws {
        // Victims with a build-id of their own: agents that other tests run on this machine patch
        // the shared victim's build-id, with other hotpatches and without this agent's rules.
        let builder = FixtureBuilder()
        let victimPath = try builder.lateSandboxVictim()
        let host = try AgentTestHost(name: "late-sandbox")
        try host.channel.addHotpatch(id: "hp1", baseline: AgentTestHost.firstBaseline, level: 1, target: victimPath,
                                     patch: try builder.patchObject("patch_level1.c"),
                                     replacements: ["parse_length": "parse_length_fixed", "banner_version": "banner_version_fixed"],
                                     description: "clamp parse_length to 64")
        try host.publish()
        try host.startAgent()
        try host.waitForStatus("hotpatch in force") { $0.hotpatch?.id == "hp1" }
        let library = try builder.lateSandbox()

        // Each sandboxes itself at its own moment: the instant the agent holds its main thread, a
        // few milliseconds after exec, or once its threads exist. Two plain victims show that new
        // processes are still patched at exec.
        let sandboxes: [LateSandbox?] = [
            LateSandbox(filter: .killExecutableMmap, delayMicroseconds: 1_000_000, onTrace: true),
            LateSandbox(filter: .killExecutableMmap, delayMicroseconds: 1_000_000, onTrace: true),
            LateSandbox(filter: .killExecutableMmap, delayMicroseconds: 1_000_000, onTrace: true),
            LateSandbox(filter: .killExecutableMmap, delayMicroseconds: 0),
            LateSandbox(filter: .killExecutableMmap, delayMicroseconds: 2_000),
            LateSandbox(filter: .killExecutableMmap, delayMicroseconds: 5_000),
            LateSandbox(filter: .killMmap, afterThreads: 4, delayMicroseconds: 1_000_000, onTrace: true),
            LateSandbox(filter: .killMmap, afterThreads: 4, delayMicroseconds: 1_000_000, onTrace: true),
            nil, nil,
        ]
        var victims: [Sandboxed] = []
        defer { victims.forEach { $0.process.stop() } }
        for sandbox in sandboxes {
            let environment = sandbox?.environment(library: library)
            let process = try RunningProcess(victimPath, ["--threads", "2", "--interval-ms", "20"], environment: environment)
            victims.append(Sandboxed(process: process, sandbox: sandbox))
        }

        // Every victim ends patched or refused with the filter named, and is alive then.
        var settled: [Int32: ProcessEntry] = [:]
        let deadline = Date().addingTimeInterval(30)
        while settled.count < victims.count, Date() < deadline {
            for entry in host.processes() where victims.contains(where: { $0.process.pid == entry.pid }) {
                if entry.state == .patched || (entry.state == .unpatchable && entry.reason?.contains("seccomp filter") == true) {
                    settled[entry.pid] = entry
                }
            }
            if victims.contains(where: { !$0.process.isAlive }) { break }
            usleep(20_000)
        }
        for victim in victims {
            // The filter is in force by now or within its fallback delay.
            let filterDeadline = Date().addingTimeInterval(victim.sandbox == nil ? 0 : 5)
            while victim.process.isAlive, LateSandbox.seccompMode(of: victim.process.pid) != 2, Date() < filterDeadline { usleep(5_000) }
        }
        usleep(100_000)
        let entries = host.processes()
        for victim in victims {
            let pid = victim.process.pid
            XCTAssertTrue(victim.process.isAlive, "\(victim.what) died: \(Self.describe(victim.process)); agent: \(entries.first { $0.pid == pid }.map { "\($0)" } ?? "no entry")\n\(host.logTail())")
            guard victim.process.isAlive else { continue }
            if victim.sandbox != nil {
                XCTAssertEqual(LateSandbox.seccompMode(of: pid), 2, "\(victim.what): its filter was never installed")
            }
            guard let entry = settled[pid] else {
                XCTFail("\(victim.what) was neither patched nor refused with a seccomp reason: \(entries.first { $0.pid == pid }.map { "\($0)" } ?? "no entry")")
                continue
            }
            if entry.state == .patched {
                _ = try victim.process.freshLine()
                let line = try victim.process.nextLine()
                XCTAssertTrue(line.hasPrefix(Self.level1), "\(victim.what) is reported patched but prints \(line)")
            } else {
                XCTAssertTrue(entry.reason?.contains("mmap") == true, "\(victim.what): \(entry.reason ?? "")")
                XCTAssertNotNil(victim.sandbox, "\(victim.what): a process without a filter was refused: \(entry.reason ?? "")")
            }
        }
        for victim in victims where victim.sandbox == nil {
            XCTAssertEqual(settled[victim.process.pid]?.state, .patched, "\(victim.what): new processes are still patched at exec")
        }
    }
}
