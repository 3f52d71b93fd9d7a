import Artifact
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing

extension LivePatchTests {
    /// A hostile (or merely careful) process sandboxes itself while the Engine loads a patch into
    /// it: a second thread installs, with `SECCOMP_FILTER_FLAG_TSYNC`, a filter that kills the whole
    /// process on `mmap`, reaching the thread the loader holds. The Engine must never inject a call
    /// a filter installed at any moment would kill on: the process lives, and ends patched (the
    /// filter came after the load) or refused with the filter named (it came before).
    @Suite struct LateSandboxThreatTests {
        /// The victim's level 1, planned against the victim built with a build-id of its own (see
        /// `FixtureBuilder.lateSandboxVictim`): a process that only this test patches.
        private static func hotpatch() throws -> Hotpatch {
            try VictimHotpatches(builder: Live.builder, victimPath: Live.builder.lateSandboxVictim()).level1
        }

        /// Starts the victim with `--threads threads`, preloaded with the late sandbox; waits for
        /// nothing, so the caller may patch it a moment after exec.
        private static func startSandboxedVictim(_ sandbox: LateSandbox, threads: Int) throws -> RunningProcess {
            let library = try Live.builder.lateSandbox()
            return try RunningProcess(try Live.builder.lateSandboxVictim(), ["--threads", String(threads), "--interval-ms", "20"],
                                      environment: sandbox.environment(library: library))
        }

        /// Waits until the late sandbox's filter is in force (or the process is gone).
        private static func waitForFilter(_ victim: RunningProcess, timeout: Double = 10) {
            let deadline = Date().addingTimeInterval(timeout)
            while victim.isAlive, LateSandbox.seccompMode(of: victim.pid) != 2, Date() < deadline { usleep(1_000) }
        }

        private static func describe(_ victim: RunningProcess) -> String {
            guard !victim.isAlive, let status = victim.waitStatus else { return "running" }
            let signal = status & 0x7f
            if signal != 0 { return "killed by signal \(signal)\(signal == SIGSYS ? " (SIGSYS: a seccomp filter)" : "")" }
            // The tracer thread, in this same process, may have collected the exit itself.
            return status == 0 ? "gone; its wait status went to the tracer" : "exited \((status >> 8) & 0xff)"
        }

        /// The victim lives with its filter in force, and `outcome` is one of the two honest ends.
        private static func expectAliveAndHonest(_ victim: RunningProcess, _ outcome: PatchOutcome, _ what: String) throws {
            waitForFilter(victim)
            Thread.sleep(forTimeInterval: 0.05)
            #expect(victim.isAlive, "\(what): the process died (\(describe(victim))) after \(outcome)")
            guard victim.isAlive else { return }
            #expect(LateSandbox.seccompMode(of: victim.pid) == 2, "\(what): the sandbox never installed its filter")
            switch outcome {
            case .applied:
                #expect(try Live.behaviour(victim) == Live.level1, "\(what)")
            case let .unpatchable(.seccompWouldKill(call, action)):
                #expect(call.hasPrefix("mmap"), "\(what): \(call)")
                #expect(action == "kill the process", "\(what): \(action)")
                #expect(try Live.behaviour(victim) == Live.original, "\(what)")
            default:
                Issue.record("\(what): \(outcome)")
            }
        }

        @Test func load_whenASecondThreadSandboxesTheProcessTheMomentTheMainThreadIsHeld_neverKillsIt() throws {
            // The sandboxing thread watches the main thread's TracerPid and installs its kill-on-mmap
            // filter (TSYNC, so it reaches the held main thread) the moment a tracer appears: between
            // the loader's look at the process and its first injected mmap.
            let target = try Self.hotpatch().targets[0]
            let sandbox = LateSandbox(filter: .killMmap, afterThreads: 4, delayMicroseconds: 300_000, onTrace: true)
            for round in 0..<8 {
                let victim = try Self.startSandboxedVictim(sandbox, threads: 2)
                defer { victim.stop() }
                _ = try victim.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
                // Armed once its threads exist (a kill-on-mmap filter forbids new thread stacks).
                let armed = Date().addingTimeInterval(5)
                while (try? ProcFS.threadIDs(of: ProcessID(victim.pid)).count) ?? 0 < 4, Date() < armed { usleep(1_000) }
                let report = try Live.reconcile(victim, desired: target, known: [target])
                try Self.expectAliveAndHonest(victim, report.outcome, "round \(round)")
                if !victim.isAlive { break }
            }
        }

        @Test func load_ofABurstOfProcessesThatSandboxThemselvesAMomentAfterExec_killsNone() throws {
            // Processes started together, each installing a filter that kills on executable mmap at its
            // own moment after exec (0 to 500 ms, over the time starting and patching them takes), or
            // the moment it sees a tracer; patched at once by a HostPatcher's tracer threads: the
            // filters land before, during and after the loads.
            let hotpatch = try Self.hotpatch()
            let delays = [0, 50, 100, 150, 200, 250, 300, 400, 500].map { $0 * 1_000 }
            let sandboxes = delays.map { LateSandbox(filter: .killExecutableMmap, delayMicroseconds: $0) }
                + (0..<5).map { _ in LateSandbox(filter: .killExecutableMmap, delayMicroseconds: 1_000_000, onTrace: true) }
            let victims = try sandboxes.map { try Self.startSandboxedVictim($0, threads: 1) }
            defer { victims.forEach { $0.stop() } }
            let host = HostPatcher(workers: 2)
            var outcomes: [Int32: PatchOutcome] = [:]
            var pending = victims.map(\.pid)
            for _ in 0..<40 where !pending.isEmpty {
                let matches = host.matches(for: [hotpatch], among: pending.map(ProcessID.init))
                for (match, report) in zip(matches, host.reconcile(matches, desired: hotpatch, known: [hotpatch])) {
                    outcomes[match.process.pid.rawValue] = report.outcome
                }
                // Busy is retried, as the agent does; a process not matched yet (still in its dynamic
                // loader) is looked at again.
                pending = pending.filter { pid in
                    guard let outcome = outcomes[pid] else { return true }
                    if case .busy = outcome { return true }
                    return false
                }
                if !pending.isEmpty { usleep(2_000) }
            }
            for (victim, sandbox) in zip(victims, sandboxes) {
                let what = "PID \(victim.pid), sandboxed \(sandbox.delayMicroseconds) µs after exec\(sandbox.onTrace ? " or on a tracer" : "")"
                guard let outcome = outcomes[victim.pid] else {
                    Issue.record("\(what): never patched nor refused (\(Self.describe(victim)))")
                    continue
                }
                try Self.expectAliveAndHonest(victim, outcome, what)
            }
        }
    }
}
