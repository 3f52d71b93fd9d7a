import AgentProtocol
import Foundation
import Glibc
import HotpatchFixtures
import XCTest

/// A local user against the exec gate: starting a targeted program in a loop as `nobody`, to make
/// the agent hold and patch hundreds of processes a second. The gate's hold budget (100 at once,
/// 1,000 a second) bounds its holds; processes beyond it are patched by the usual path; the storm
/// costs the agent about what patching every new process cost without the gate; and a process
/// started after the storm still runs the fix from its first call.
final class ExecGateThreatTests: XCTestCase {
    private static let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    private static let stormSeconds = 3.0

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "runs the attacker as nobody through setpriv and patches through ptrace: run as root")
    }

    /// Runs the target in a loop as nobody for `stormSeconds` against `host`'s running agent;
    /// returns the runs, how long the storm lasted and the agent's CPU seconds meanwhile.
    private func storm(_ host: AgentTestHost) throws -> (runs: Int, lasted: Double, cpu: Double) {
        let agent = try XCTUnwrap(host.agent)
        let before = ProcessCPU.seconds(agent.pid)
        let started = Date()
        let storm = try RunningProcess(Self.asNobody[0], Array(Self.asNobody.dropFirst()) + [
            "/bin/sh", "-c", "n=0; end=$(( $(date +%s) + \(Int(Self.stormSeconds)) )); "
                + "while [ $(date +%s) -lt $end ]; do \"$0\" --once >/dev/null; n=$((n+1)); done; echo runs=$n", host.victimPath,
        ])
        defer { _ = storm.stop(within: 5) }
        let line = try storm.waitForLine(timeout: Self.stormSeconds + 20) { $0.hasPrefix("runs=") }
        return (Int(line.dropFirst(5)) ?? 0, Date().timeIntervalSince(started), ProcessCPU.seconds(agent.pid) - before)
    }

    private func waitUntilWatched(_ host: AgentTestHost) throws {
        try host.waitForStatus("hotpatch in force, the target watched") { status in
            status.hotpatch?.id == "hp1" && !host.logLines(containing: "Watching 1 file that holds a targeted object").isEmpty
        }
    }

    func testAnExecStormOfTheTargetByNobody_costsTheAgentNoMoreThanPatchingEveryNewProcessDid_andALaterRunStillRunsTheFix() throws {
        let host = try AgentTestHost(name: "exec-storm")
        try host.addHotpatch(level: 1)
        try host.publish()
        // Without the gate first: every new process is patched by the usual path, a few ms after its start.
        try host.startAgent(["--exec-gate", "false"])
        try waitUntilWatched(host)
        let ungated = try storm(host)
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
        try host.startAgent()
        try waitUntilWatched(host)
        let gated = try storm(host)
        let gate = try XCTUnwrap(host.status()?.execGate)
        print("exec storm by nobody: without the gate \(ungated.runs) runs in \(String(format: "%.2f", ungated.lasted)) s, agent CPU \(String(format: "%.2f", ungated.cpu)) s; with it \(gated.runs) runs in \(String(format: "%.2f", gated.lasted)) s, agent CPU \(String(format: "%.2f", gated.cpu)) s; gate \(gate)")

        XCTAssertGreaterThan(gated.runs, 100, "the storm ran")
        XCTAssertEqual(gate.mode, "fanotify")
        XCTAssertGreaterThan(gate.patched, 0, "the gate held and patched the storm's processes")
        // Every new process of the target is patched, by the gate or, beyond its budget, by the
        // usual path: the agent's CPU a second stays near what patching every new process cost
        // without the gate (debug builds: 0.62 and 0.76 s a second).
        XCTAssertLessThan(gated.cpu / gated.lasted, 1.5 * ungated.cpu / ungated.lasted + 0.1,
                          "with the gate \(gated.cpu) s in \(gated.lasted) s; without \(ungated.cpu) s in \(ungated.lasted) s\n\(host.logTail())")
        // The budget refills: a run started after the storm is held and runs the fix from its first call.
        usleep(300_000)
        let after = try RunningProcess(host.victimPath, ["--once"])
        defer { _ = after.stop(within: 5) }
        XCTAssertEqual(try after.nextLine(timeout: 10), AgentTestHost.level1Output)
        XCTAssertNotNil(host.status(), "the agent still answers")
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }
}
