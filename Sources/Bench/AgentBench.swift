import AgentProtocol
import Engine
import Foundation
import Glibc
import HotpatchFixtures

/// The agent end to end: the real `hotpatch-agent` (foreground, its own scratch paths) and a
/// channel signed by the real `hotpatch-pack`.
struct AgentBenchResult: Codable {
    /// Idle processes mapping the target when the release lands.
    var processes: Int
    /// How the agent learns of new processes ("netlink" or "scan").
    var processWatch: String
    /// `hotpatch-pack publish` of the release (signing and writing the index).
    var publishMicroseconds: UInt64
    /// From the new index in the channel (`hotpatch-pack publish` returned: its last act renames the
    /// signature, the publication's commit point, into place) to the agent reporting every process patched.
    var landingToAllPatchedMicroseconds: UInt64
    /// From the exec of a new matching process to the agent reporting it patched.
    var execToPatched: Distribution
    /// The agent's idle cost with `idle.processes` patched processes around it (nil: not measured).
    var idle: AgentIdleCost?
    /// Short-lived processes and the exec gate (nil: not measured).
    var execWindow: ExecWindowResult?
}

enum AgentBench {
    /// The bench sleeper's build-id: its own, so the agent never patches another fixture.
    static let sleeperBuildID = "b3f1a2c4d5e6f708192a3b4c5d6e7f80"
    /// The bench plugin's, for the same reason.
    static let pluginBuildID = "b3f1a2c4d5e6f708192a3b4c5d6e7f81"

    static func run(processes count: Int, execSamples: Int, idleProcesses: Int, idleSeconds: Double, shortLivedRuns: Int = 40,
                    log: (String) -> Void) throws -> AgentBenchResult {
        let builder = FixtureBuilder()
        let sleeper = try builder.build("sleeper.c", flags: ["-O0", "-Wl,--build-id=0x" + sleeperBuildID], as: "agent-bench-sleeper")
        // A library the release fixes too, which a short-lived loader dlopens (the exec window).
        let plugin = try builder.build("bench_plugin_lib.c", flags: ["-O0", "-shared", "-fPIC", "-Wl,--build-id=0x" + pluginBuildID],
                                       suffix: ".so", as: "agent-bench-plugin")
        let loader = try builder.build("bench_plugin_loader.c", flags: ["-O1", "-ldl"], as: "agent-bench-plugin-loader")
        let products = ChannelBuilder.productsDirectory()
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let channel = try ChannelBuilder(root: root, packBinary: products + "/hotpatch-pack")
        try channel.addBaseline(id: "bench-base", description: "empty baseline, matches any disk")
        // An empty configuration: embedded defaults, every path given by a flag.
        try Data().write(to: URL(fileURLWithPath: root + "/agent.toml"))
        try channel.publish()

        var children: [BenchChild] = []
        defer { children.forEach { $0.stop() } }
        for _ in 0..<count { children.append(try BenchChild(sleeper)) }
        try waitUntilIdle(children)

        // The agent's log goes to a file (kept on failure): one line per patched process would
        // drown the benchmark's own output. `exec` keeps the child's pid the agent's.
        let agentLog = NSTemporaryDirectory() + "/hotpatch-bench-agent.log"
        let agent = try BenchChild("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>\"\(agentLog)\"", products + "/hotpatch-agent",
            "--config", root + "/agent.toml", "--channel", channel.channel, "--trusted-keys", channel.trustedKeys,
            "--state-dir", root + "/state", "--runtime-dir", root + "/run", "--reboot-required-file", root + "/run/reboot-required",
            "--poll-interval", "1h", "--log-target", "stderr"])
        log("  agent PID \(agent.pid), its log: \(agentLog)")
        defer { agent.stop() }
        let client = ControlClient(socketPath: root + "/run/" + ControlProtocol.socketName, timeoutSeconds: 10)
        let ready = try waitFor("the agent's first cycle", timeout: 60, client: client) { status in status.channel.lastCheck != nil }
        log("  agent ready (process watch: \(ready.processWatch)); \(count) sleepers idle")
        // Before the release: nothing is marked, no exec or open waits for the agent.
        let before = shortLivedRuns > 0 ? try ExecTimings.measure(program: sleeper, loader: loader, library: plugin, samples: shortLivedRuns) : nil

        try channel.addHotpatch(id: "bench-hp1", baseline: "bench-base", level: 1, fixing: [
            ChannelBuilder.Fix(target: sleeper, patch: try builder.patchObject("patch_level1.c"),
                               replacements: ["parse_length": "parse_length_fixed", "banner_version": "banner_version_fixed"]),
            ChannelBuilder.Fix(target: plugin, patch: try builder.patchObject("patch_bench_plugin.c"),
                               replacements: ["plugin_length": "plugin_length_fixed"]),
        ])
        let publishStart = Monotonic.now
        try channel.publish()
        let landed = Monotonic.now
        let ours = Set(children.map(\.pid))
        try waitFor("all \(count) sleepers patched", timeout: 120, client: client) { (processes: [ProcessEntry]) in
            processes.filter { ours.contains($0.pid) && $0.state == .patched }.count == count
        }
        let allPatched = Monotonic.now
        log("  release landed → \(count) patched in \(formatMicroseconds(allPatched.microseconds(since: landed)))")

        var execSamplesMicros: [UInt64] = []
        for _ in 0..<execSamples {
            let start = Monotonic.now
            // posix_spawn returns once the child has exec'd: the clock starts at the exec.
            let child = try BenchChild(sleeper)
            try waitFor("new sleeper \(child.pid) patched", timeout: 10, client: client, every: 500) { (processes: [ProcessEntry]) in
                processes.contains { $0.pid == child.pid && $0.state == .patched }
            }
            execSamplesMicros.append(Monotonic.now.microseconds(since: start))
            child.stop()
            usleep(50_000)
        }
        let exec = Distribution(execSamplesMicros)
        log("  exec → patched: median \(formatMicroseconds(exec.median)), max \(formatMicroseconds(exec.max)) over \(execSamples)")

        var execWindow: ExecWindowResult?
        if let before {
            let gated = try ExecTimings.measure(program: sleeper, loader: loader, library: plugin, samples: shortLivedRuns)
            let gate = (try? client.send(ControlRequest(command: .status)).status?.execGate) ?? nil
            let counts = gate.map { "\($0.patched) patched at start, \($0.letGo) let go (last: \($0.lastLetGo ?? "none")), \($0.notHeld) not held" } ?? "none"
            let window = ExecWindowResult(
                runs: shortLivedRuns, ranTheFix: gated.targetLines.filter { $0 == "parse_length(100)=64" }.count,
                loadsRanTheFix: gated.loadLines.filter { $0 == "plugin_length(100)=64" }.count, gate: gate?.mode ?? "unknown",
                gateCounts: counts,
                targetBefore: Distribution(before.target), targetGated: Distribution(gated.target),
                loadBefore: Distribution(before.load), loadGated: Distribution(gated.load),
                readBefore: Distribution(before.read), readGated: Distribution(gated.read),
                otherBefore: Distribution(before.other), otherGated: Distribution(gated.other))
            log("  exec window: \(window.ranTheFix)/\(window.runs) short-lived processes ran the fix, \(window.loadsRanTheFix)/\(window.runs) "
                + "that dlopen the library (exec gate: \(window.gate))")
            execWindow = window
        }

        // Idle: more sleepers up to `idleProcesses`, all patched, then nothing changes.
        var idle: AgentIdleCost?
        if idleProcesses > 0 {
            for _ in children.count..<max(children.count, idleProcesses) { children.append(try BenchChild(sleeper)) }
            let all = Set(children.map(\.pid))
            try waitFor("all \(all.count) sleepers patched", timeout: 120, client: client, every: 20_000) { (processes: [ProcessEntry]) in
                processes.filter { all.contains($0.pid) && $0.state == .patched }.count == all.count
            }
            Thread.sleep(forTimeInterval: 3)  // the follow-up looks of the last starts are over
            let cost = try AgentIdleCost.measure(pid: agent.pid, processes: all.count, seconds: idleSeconds)
            log("  idle with \(cost.processes) patched processes: \(String(format: "%.2f", cost.cpuPercent)) % of a CPU over \(String(format: "%.1f", cost.seconds)) s (\(cost.hostForks) forks on the host meanwhile), RSS \(cost.residentKiB) KiB")
            idle = cost
        }
        return AgentBenchResult(processes: count, processWatch: ready.processWatch,
                                publishMicroseconds: landed.microseconds(since: publishStart),
                                landingToAllPatchedMicroseconds: allPatched.microseconds(since: landed), execToPatched: exec,
                                idle: idle, execWindow: execWindow)
    }

    private static func temporaryDirectory() throws -> String {
        do { return try TemporaryDirectory.create(prefix: "hotpatch-bench-agent") } catch { throw BenchFailure("\(error)") }
    }

    private static func waitUntilIdle(_ children: [BenchChild]) throws {
        let readyBy = Date().addingTimeInterval(60)
        for child in children {
            while !(ProcessCondition.read(child.pid).map { $0.catchesSIGUSR1 && $0.state == "S" } ?? false) {
                guard Date() < readyBy else { throw BenchFailure("sleeper \(child.pid) not idle within 60 s") }
                usleep(1000)
            }
        }
    }

    /// Polls the agent's status every `every` µs until `done` holds, and returns it.
    private static func waitFor(_ what: String, timeout: Double, client: ControlClient, every: UInt32 = 2000,
                                _ done: (AgentStatus) -> Bool) throws -> AgentStatus {
        try poll(what, timeout: timeout, every: every) {
            (try? client.send(ControlRequest(command: .status)).status).flatMap { done($0) ? $0 : nil }
        }
    }

    /// Asks only for the process list: each question is work for the agent, in the middle of the
    /// pass it waits for.
    private static func waitFor(_ what: String, timeout: Double, client: ControlClient, every: UInt32 = 2000,
                                processes done: ([ProcessEntry]) -> Bool) throws {
        _ = try poll(what, timeout: timeout, every: every) {
            (try? client.send(ControlRequest(command: .processes)).processes).flatMap { done($0) ? () : nil }
        }
    }

    /// Calls `attempt` every `every` µs until it returns a value, or throws after `timeout` seconds.
    private static func poll<T>(_ what: String, timeout: Double, every: UInt32, _ attempt: () -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let value = attempt() { return value }
            usleep(every)
        }
        throw BenchFailure("\(what): not within \(Int(timeout)) s")
    }
}
