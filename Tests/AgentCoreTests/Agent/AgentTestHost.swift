import AgentProtocol
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem

/// A scratch host for agent integration tests: a real channel signed by the real `hotpatch-pack`,
/// victims built with a build-id of their own (so an agent under test never touches the processes
/// of other suites), and the real `hotpatch-agent` binary, run in the foreground as a child process.
final class AgentTestHost: @unchecked Sendable {
    /// The build-id of this suite's victim: distinct from every other fixture's.
    static let victimBuildID = "a9e0c7a1d5e54b4f8f2a0a11c0ffee00"
    /// The baseline every hotpatch of this host belongs to; its file already matches the disk.
    static let firstBaseline = "base-1"

    private let scratch: TemporaryDirectory
    let root: String
    let channel: ChannelBuilder
    let victimPath: String
    let products: String
    private let builder = FixtureBuilder()
    private var victims: [RunningProcess] = []
    private(set) var agent: AgentProcess?
    private var agentRuns = 0

    /// Builds the victim (with `victimFlags` added to its compiler flags: `-static`, say), keys and
    /// a channel whose first baseline matches what is on disk.
    init(name: String, victimFlags: [String] = []) throws {
        scratch = try TemporaryDirectory(prefix: "agent-test-host")
        root = scratch.path
        products = Products.directory
        channel = try ChannelBuilder(root: root, packBinary: products + "/hotpatch-pack")
        victimPath = try builder.build("victim.c", flags: ["-O0", "-g", "-pthread", "-fno-inline",
                                                         "-Wl,--build-id=0x" + Self.victimBuildID] + victimFlags,
                                       as: "agent-victim")
        try FileManager.default.createDirectory(atPath: installedDirectory, withIntermediateDirectories: true)
        try write("release 1\n", to: installedDirectory + "/release")
        try write("release 1\n", to: root + "/release-1")
        try write("# empty: embedded defaults, every path given by a flag\n", to: root + "/agent.toml")
        try channel.addBaseline(id: Self.firstBaseline, files: [root + "/release-1": installedDirectory + "/release"],
                                description: "first baseline, already on disk")
    }

    deinit {
        agent?.kill(SIGKILL)
        victims.forEach { $0.stop() }
        scratch.remove()
    }

    var socket: String { root + "/run/" + ControlProtocol.socketName }
    var rebootRequiredFile: String { root + "/run/reboot-required" }
    var stateDirectory: String { root + "/state" }
    var installedDirectory: String { root + "/installed" }
    var agentLog: String { root + "/agent.log" }

    // MARK: Channel

    /// Adds hotpatch level 1 (clamp 64, banner 2) or 2 (clamp 32 through libc, banner unchanged).
    func addHotpatch(level: Int, id: String? = nil, baseline: String = AgentTestHost.firstBaseline) throws {
        let release = id ?? "hp\(level)"
        if level == 1 {
            try channel.addHotpatch(id: release, baseline: baseline, level: 1, target: victimPath,
                                    patch: try builder.patchObject("patch_level1.c"),
                                    replacements: ["parse_length": "parse_length_fixed", "banner_version": "banner_version_fixed"],
                                    cves: ["CVE-2026-0001"], description: "clamp parse_length to 64")
        } else {
            try channel.addHotpatch(id: release, baseline: baseline, level: level, target: victimPath,
                                    patch: try builder.patchObject("patch_level2.c"),
                                    replacements: ["parse_length": "parse_length_fixed2"], references: ["helper_scale"],
                                    cves: ["CVE-2026-0001", "CVE-2026-0002"], description: "clamp parse_length to 32")
        }
    }

    /// Adds a hotpatch whose replacement traps: patched victims die of SIGILL.
    func addCrashingHotpatch(id: String, level: Int) throws {
        try channel.addHotpatch(id: id, baseline: Self.firstBaseline, level: level, target: victimPath,
                                patch: try builder.patchObject("patch_crash.c"),
                                replacements: ["parse_length": "parse_length_crash"], description: "a broken fix")
    }

    /// Adds a baseline that replaces the installed release file.
    func addBaseline(id: String, content: String) throws {
        let source = root + "/" + id + ".release"
        try write(content, to: source)
        try channel.addBaseline(id: id, files: [source: installedDirectory + "/release"], description: "baseline \(id)")
    }

    func publish() throws { try channel.publish() }

    // MARK: Processes

    /// Starts a victim with `threads` busy threads printing every 20 ms.
    @discardableResult
    func startVictim(threads: Int = 2) throws -> RunningProcess {
        let victim = try RunningProcess(victimPath, ["--threads", "\(threads)", "--interval-ms", "20"])
        victims.append(victim)
        _ = try victim.line(timeout: 5) { $0.hasPrefix("parse_length") }
        return victim
    }

    /// Kills and forgets every victim.
    func stopVictims() {
        victims.forEach { $0.stop() }
        victims.removeAll()
    }

    /// Starts `hotpatch-agent` in the foreground on this host's paths; `arguments` are added.
    @discardableResult
    func startAgent(_ arguments: [String] = []) throws -> AgentProcess {
        agentRuns += 1
        let process = try AgentProcess(binary: products + "/hotpatch-agent", arguments: agentArguments + arguments,
                                       log: agentLog, run: agentRuns)
        agent = process
        return process
    }

    /// The flags pointing the agent at this host (config file absent: embedded defaults).
    var agentArguments: [String] {
        ["--config", root + "/agent.toml", "--channel", channel.channel, "--trusted-keys", channel.trustedKeys,
         "--state-dir", stateDirectory, "--runtime-dir", root + "/run", "--reboot-required-file", rebootRequiredFile,
         "--poll-interval", "1s", "--log-target", "stderr"]
    }

    /// Stops the agent with SIGTERM and returns its exit status.
    @discardableResult
    func stopAgent() -> Int32? {
        defer { agent = nil }
        return agent?.terminate()
    }

    // MARK: Control

    /// The agent's status over the control socket, or nil while it does not answer.
    func status() -> AgentStatus? {
        guard let response = try? ControlClient(socketPath: socket, timeoutSeconds: 10).send(ControlRequest(command: .status)),
              response.ok else { return nil }
        return response.status
    }

    /// The agent's view of the processes.
    func processes() -> [ProcessEntry] {
        (try? ControlClient(socketPath: socket, timeoutSeconds: 10).send(ControlRequest(command: .processes)))?.processes ?? []
    }

    /// Sends `command` through the control socket and returns the response.
    func send(_ command: ControlRequest.Command, id: String? = nil) throws -> ControlResponse {
        try ControlClient(socketPath: socket, timeoutSeconds: 60).send(ControlRequest(command: command, id: id))
    }

    /// Waits until the status satisfies `predicate`; throws with the last status and the log if not.
    @discardableResult
    func waitForStatus(_ what: String, timeout: Double = 15, _ predicate: (AgentStatus) -> Bool) throws -> AgentStatus {
        let deadline = Date().addingTimeInterval(timeout)
        var last: AgentStatus?
        while Date() < deadline {
            if let status = status() {
                last = status
                if predicate(status) { return status }
            }
            usleep(20_000)
        }
        throw FixtureError.timeout("\(what): last status \(last.map { "\($0)" } ?? "none")\n--- agent log ---\n\(logTail())")
    }

    /// Runs `agentctl --socket … arguments`, optionally as another user, and returns status and output.
    func agentctl(_ arguments: [String], asUser uid: uid_t? = nil) throws -> (status: Int32, output: String) {
        var command = [products + "/agentctl", "--socket", socket] + arguments
        if let uid { command = ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups"] + command }
        let run = try Program.run(command[0], Array(command.dropFirst()))
        return (run.status, run.output)
    }

    /// The last lines of the agent's log, for failure messages.
    func logTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOfFile: agentLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Log lines of the agent that contain `text`.
    func logLines(containing text: String) -> [String] {
        ((try? String(contentsOfFile: agentLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            .filter { $0.contains(text) }
    }

    func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }
}

/// The real `hotpatch-agent` running as a child; its stdout and stderr are appended to a log file.
final class AgentProcess: @unchecked Sendable {
    let pid: pid_t
    private var exitStatus: Int32?

    init(binary: String, arguments: [String], log: String, run: Int) throws {
        let header = "=== agent run \(run): \(arguments.joined(separator: " "))\n"
        let descriptor = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FixtureError.toolFailed("open \(log): errno \(errno)") }
        _ = header.withCString { Glibc.write(descriptor, $0, strlen($0)) }
        defer { close(descriptor) }
        // No JOURNAL_STREAM or NOTIFY_SOCKET from the runner's environment: this agent is in the foreground.
        let environment = ProcessInfo.processInfo.environment.filter { !["JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC"].contains($0.key) }
        pid = try ChildProcess.spawn(binary, arguments, environment: environment,
                                     standardOutput: .descriptor(descriptor), standardError: .descriptor(descriptor)).rawValue
    }

    deinit { kill(SIGKILL) }

    /// Sends `signal` and, for SIGKILL, reaps the process.
    func kill(_ signal: Int32) {
        guard exitStatus == nil else { return }
        Glibc.kill(pid, signal)
        if signal == SIGKILL { _ = wait(timeout: 10) }
    }

    /// SIGTERM, then waits up to 20 s for a graceful exit (SIGKILL after that); returns the wait status's exit code.
    func terminate() -> Int32? {
        guard exitStatus == nil else { return exitStatus }
        Glibc.kill(pid, SIGTERM)
        if let status = wait(timeout: 20) { return status }
        Glibc.kill(pid, SIGKILL)
        _ = wait(timeout: 10)
        return nil
    }

    /// Waits for the exit; returns the exit code (128 + signal when killed), or nil on timeout.
    func wait(timeout: Double) -> Int32? {
        if let exitStatus { return exitStatus }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                let code = ChildProcess.exitCode(fromWaitStatus: status)
                exitStatus = code
                return code
            }
            if result < 0 { exitStatus = -1; return -1 }
            usleep(5_000)
        }
        return nil
    }
}
