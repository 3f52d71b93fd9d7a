import AgentProtocol
import Artifact
import Engine
import Foundation
import Glibc
import HotpatchFixtures

/// The agent demo: a demo service runs; a publisher publishes into a signed channel; the real
/// hotpatch-agent, running as a child, patches the service live (level 1, then level 2) and
/// installs a baseline that asks for a reboot; agentctl shows each state. Every step is checked,
/// and everything is cleaned up on every path.
struct AgentScenario {
    /// Busy worker threads in the service.
    let threads: Int
    /// The folder of the product binaries.
    let products: String
    let console: AgentConsole
    /// The agent's control socket, once the work directory exists.
    private let socket = Box<String>()

    /// How the run ended.
    struct Outcome {
        var error: String?
        var interrupted = false
        var summary = ""
    }

    /// The service prints a line every this many milliseconds.
    static let intervalMilliseconds = 100
    /// How long a published change may take to show in the service's output.
    static let changeTimeout = 15.0
    /// How long agentctl status may take to show what is expected.
    static let statusTimeout = 10.0
    /// Lines of the service's output checked after each change.
    static let linesChecked = 10
    /// The agent's poll interval (changes to the channel directory are noticed at once anyway).
    static let pollInterval = "2s"
    /// The host's own reboot flag, which the demo must never touch.
    static let hostRebootRequired = "/run/reboot-required"

    typealias Behaviour = LiveScenario.Behaviour

    /// What the demo started, for the clean-up that runs on every path.
    final class Session {
        var host: DemoHost?
        var agent: AgentProcess?
        var victim: RunningProcess?

        /// Kills what still runs and removes the temporary directory; says what it did.
        func tearDown() -> (done: [String], problem: String?) {
            var done: [String] = []
            if let agent, agent.exitStatus == nil {
                if let status = agent.terminate(timeout: 5) {
                    done.append("agent PID \(agent.pid) \(AgentProcess.describe(status)) after SIGTERM")
                } else {
                    agent.kill()
                    done.append("agent PID \(agent.pid) killed (no exit within 5 s of SIGTERM)")
                }
            }
            agent = nil
            if let victim, victim.isAlive {
                victim.stop()
                done.append("service PID \(victim.pid) killed")
            }
            victim = nil
            if let host {
                self.host = nil
                guard host.remove() else { return (done, "could not remove \(host.root)") }
                done.append("\(host.root) removed")
            }
            return (done, nil)
        }
    }

    /// Runs the demo; never throws: a failure is returned with its reason, after clean-up.
    func run() -> Outcome {
        let started = Date()
        let session = Session()
        let hostFlagBefore = FileSystem.read(Self.hostRebootRequired)
        var outcome = Outcome()
        do {
            try perform(session)
        } catch {
            outcome.error = "\(error)"
            // A dead service explains most failures that follow it: say so.
            if let victim = session.victim, !victim.isAlive, !outcome.error!.contains("demo service (PID") {
                outcome.error! += " (\(Self.death(of: victim)))"
            }
        }
        let cleanup = session.tearDown()
        if outcome.error != nil, !cleanup.done.isEmpty { console.field("cleanup", cleanup.done.joined(separator: ", ")) }
        if let problem = cleanup.problem, outcome.error == nil { outcome.error = problem }
        if FileSystem.read(Self.hostRebootRequired) != hostFlagBefore, outcome.error == nil {
            outcome.error = "the host's \(Self.hostRebootRequired) changed during the demo"
        }
        if let signal = Interruption.shared.received {
            outcome.interrupted = true
            outcome.error = "interrupted by \(signal); everything the demo started was stopped and removed"
        }
        outcome.summary = String(format: "OK in %.1f s: ", Date().timeIntervalSince(started))
            + "the service was patched live to level 1, then level 2, and never restarted;\n"
            + "baseline demo-2 was installed and a reboot requested, all inside W; the agent stopped cleanly."
        return outcome
    }

    // MARK: The steps

    private func perform(_ session: Session) throws {
        let host = try DemoHost.create()
        session.host = host
        socket.value = host.socket
        console.abbreviate(host.root, as: "W")
        console.title()
        console.say("")
        console.field("workdir", "\(host.root) (W below): channel, keys, agent state, control socket,\nreboot-required file and the service's files; removed at the end")

        // The service and its two hotpatch levels, with a build-id of their own.
        let buildID = Self.randomBuildID()
        let builder = FixtureBuilder(outputDirectory: host.build)
        let built: String, level1: String, level2: String
        do {
            built = try builder.build("victim.c", flags: ["-O0", "-g", "-pthread", "-fno-inline", "-Wl,--build-id=0x\(buildID)"],
                                      as: "demo-service")
            level1 = try builder.patchObject("patch_level1.c")
            level2 = try builder.patchObject("patch_level2.c")
        } catch {
            throw DemoFailure("compiling the demo service and its patches with cc failed: \(error)")
        }
        guard let actual = try? ELFFile.load(path: built).buildID?.description, actual == buildID else {
            throw DemoFailure("the compiled service \(built) does not carry the build-id \(buildID) it was linked with")
        }
        try FileSystem.copy(built, to: host.serviceExecutable, mode: 0o755)
        try FileSystem.write("demo-service 1.0\n", to: host.serviceVersionFile)
        try Interruption.shared.check()

        // The publisher: keys, a channel, and the baseline the host already runs.
        let publisher: ChannelBuilder
        do {
            publisher = try ChannelBuilder(root: host.publisher, packBinary: Products.path("hotpatch-pack", in: products))
            try FileSystem.write("demo-service 1.0\n", to: host.publisher + "/VERSION-1.0")
            try publisher.addBaseline(id: "demo-1", files: [host.publisher + "/VERSION-1.0": host.serviceVersionFile],
                                      description: "demo-service 1.0")
            try publisher.publish(expiresIn: "1h")
        } catch let failure as DemoFailure {
            throw failure
        } catch {
            throw DemoFailure("building the channel failed: \(error)")
        }
        try FileSystem.copy(publisher.trustedKeys + "/publisher.pub", to: host.keys + "/publisher.pub", mode: 0o644)
        try host.mirror(from: publisher.channel)

        // The service.
        let victim: RunningProcess
        do {
            victim = try RunningProcess(host.serviceExecutable, ["--threads", "\(threads)", "--interval-ms", "\(Self.intervalMilliseconds)"],
                                        ownProcessGroup: true)
        } catch {
            throw DemoFailure("starting the demo service failed: \(error)")
        }
        session.victim = victim
        _ = try reading(victim) { try victim.waitForLine(timeout: 10) { $0.hasPrefix("ready") } }
        let identity = try reading(victim) { try victim.identity() }
        console.field("service", "PID \(victim.pid): W/opt/demo-service/demo-service, compiled from Fixtures/victim.c;\n"
            + "\(threads) threads call parse_length() and banner_version(), the main thread prints\n"
            + "what they return every \(Self.intervalMilliseconds) ms; build-id \(buildID.prefix(12))…, unique to this run")
        console.field("publisher", "hotpatch-pack keygen, init, baseline demo-1 (the service 1.0 as installed), publish;\n"
            + "the public key goes to W/keys, the channel is copied to W/channel after each publish")

        // The agent.
        let arguments = ["--config", host.config, "--channel", host.channel, "--trusted-keys", host.keys,
                         "--state-dir", host.state, "--runtime-dir", host.runtime,
                         "--reboot-required-file", host.rebootRequired, "--reboot-policy", "request",
                         "--metrics-file", host.metrics, "--poll-interval", Self.pollInterval, "--log-target", "stderr"]
        let console = self.console
        let agent = try AgentProcess(Products.path("hotpatch-agent", in: products), arguments) { console.agent($0) }
        session.agent = agent
        let shown = (["hotpatch-agent"] + arguments).map { $0.replacingOccurrences(of: host.root, with: "W") }
        console.field("agent", "PID \(agent.pid): " + Self.wrap(shown, width: 76)
            + "\n(W/agent.toml is empty: the embedded defaults apply, never /etc/hotpatch-agent's)")

        console.phase("Start: the agent adopts baseline demo-1; nothing to patch yet")
        _ = try waitForStatus(agent, "after the agent started") { status in
            Self.differences([
                ("verdict", status.verdict.rawValue, "up-to-date"),
                ("baseline.active", status.baseline.active ?? "null", "demo-1"),
                ("hotpatch", status.hotpatch?.id ?? "null", "null"),
                ("channel.version", status.channel.version.map(String.init) ?? "null", "1"),
            ])
        }
        console.field("status", "up to date, baseline demo-1, no hotpatch (agentctl status --json)")
        try checkLines(victim, expected: Behaviour.original, count: 3, agent: agent)

        // 1 and 2: the two hotpatch levels.
        let levels: [(title: String, id: String, level: Int, patch: String, replace: [String], refs: [String], expected: String)] = [
            ("1. Publish hotpatch level 1: parse_length clamps to 64, banner_version returns 2",
             "demo-hp1", 1, level1, ["parse_length=parse_length_fixed", "banner_version=banner_version_fixed"], [], Behaviour.level1),
            ("2. Publish level 2: clamp to 32 (through libc and a static helper), banner change dropped",
             "demo-hp2", 2, level2, ["parse_length=parse_length_fixed2"], ["helper_scale"], Behaviour.level2),
        ]
        var previous = Behaviour.original
        for level in levels {
            console.phase(level.title)
            var pack = ["hotpatch", "--channel", publisher.channel, "--id", level.id, "--baseline", "demo-1",
                        "--level", "\(level.level)", "--target", built, "--patch", level.patch, "--path-hint", host.serviceExecutable,
                        "--description", level.title.components(separatedBy: ": ").last ?? ""]
            for replacement in level.replace { pack += ["--replace", replacement] }
            for reference in level.refs { pack += ["--ref", reference] }
            var shown = ["hotpatch-pack", "hotpatch", "--id", level.id, "--baseline", "demo-1", "--level", "\(level.level)",
                         "--target", "demo-service", "--patch", "patch_level\(level.level).so"]
            for replacement in level.replace { shown += ["--replace", replacement] }
            for reference in level.refs { shown += ["--ref", reference] }
            let published = try publish(publisher, host: host, version: level.level + 1, releaseCommand: pack,
                                        shown: Self.wrap(shown, width: 86))
            try awaitChange(victim, to: level.expected, from: previous, since: published, agent: agent)
            try checkLines(victim, expected: level.expected, count: Self.linesChecked, agent: agent)
            try checkSameProcess(victim, identity)
            _ = try waitForStatus(agent, "after publishing \(level.id)") { status in
                Self.differences([
                    ("verdict", status.verdict.rawValue, "up-to-date"),
                    ("hotpatch", status.hotpatch.map { "\($0.id) level \($0.level)" } ?? "null", "\(level.id) level \(level.level)"),
                    ("processes", Self.counts(status), "1 patched, 0 pending, 0 unpatchable"),
                    ("lastPauseUsec", status.lastPauseUsec == nil ? "null" : "set", "set"),
                ])
            }
            let processes = try agentctl(["processes", "--json"])
            let entries = try Self.decode([ProcessEntry].self, processes, what: "agentctl processes --json")
            guard entries.count == 1, let entry = entries.first, entry.pid == victim.pid, entry.state == .patched,
                  entry.hotpatch == level.id, entry.pauseUsec != nil else {
                throw DemoFailure("agentctl processes --json shows \(entries), expected PID \(victim.pid) patched with \(level.id) and a pause")
            }
            if level.level == 1 { try show(["status"], host: host) }
            try show(["processes"], host: host)
            previous = level.expected
        }

        // 3: a baseline, installed on disk, waiting for a reboot.
        console.phase("3. Publish baseline demo-2: installed on disk, the host must reboot to run it")
        try FileSystem.write("demo-service 2.0\n", to: host.publisher + "/VERSION-2.0")
        let why = "demo-service 2.0, parse_length bounded in the source"
        let published = try publish(publisher, host: host, version: 4,
                                    releaseCommand: ["baseline", "--channel", publisher.channel, "--id", "demo-2", "--planned",
                                                     "--file", "\(host.publisher)/VERSION-2.0=\(host.serviceVersionFile)",
                                                     "--description", why],
                                    shown: Self.wrap(["hotpatch-pack", "baseline", "--id", "demo-2", "--planned", "--file",
                                                      "VERSION-2.0=W/opt/demo-service/VERSION", "--description", "'\(why)'"], width: 86))
        _ = try waitForStatus(agent, "after publishing baseline demo-2") { status in
            Self.differences([
                ("verdict", status.verdict.rawValue, "reboot-required"),
                ("reboot.required", "\(status.reboot.required)", "true"),
                ("reboot.reasons", status.reboot.reasons.joined(separator: "; "), "planned baseline demo-2: \(why)"),
                ("baseline", "active \(status.baseline.active ?? "null"), pending \(status.baseline.pending)", "active demo-1, pending [\"demo-2\"]"),
                ("hotpatch", status.hotpatch.map { "\($0.id) level \($0.level)" } ?? "null", "demo-hp2 level 2"),
                ("processes", Self.counts(status), "1 patched, 0 pending, 0 unpatchable"),
            ])
        }
        let seconds = Date().timeIntervalSince(published)
        try show(["status"], host: host)
        guard FileSystem.read(host.serviceVersionFile) == "demo-service 2.0\n" else {
            throw DemoFailure("W/opt/demo-service/VERSION holds \(FileSystem.read(host.serviceVersionFile).debugDescription), expected \"demo-service 2.0\"")
        }
        let backup = host.state + "/backup/demo-2" + host.serviceVersionFile
        guard FileSystem.read(backup) == "demo-service 1.0\n" else {
            throw DemoFailure("the agent kept no copy of the replaced VERSION file at \(backup)")
        }
        console.field("installed", String(format: "W/opt/demo-service/VERSION now says \"demo-service 2.0\" (seen %.1f s after\n", seconds)
            + "publishing); the agent kept the 1.0 file under W/state/backup/demo-2/")
        let flag = FileSystem.read(host.rebootRequired) ?? ""
        // demo-2 installs only a plain file: .pkgs names the package whose agent installed it, as
        // Debian's list names packages (not releases).
        let expectedFlag = "*** System restart required ***\nhotpatch-agent: demo-2: planned baseline demo-2: \(why) (packages: hotpatch-agent)\n"
        let expectedPackages = "hotpatch-agent\n"
        guard flag == expectedFlag, FileSystem.read(host.rebootRequired + ".pkgs") == expectedPackages else {
            throw DemoFailure("W/reboot-required holds \(flag.debugDescription) and .pkgs \(FileSystem.read(host.rebootRequired + ".pkgs").debugDescription); expected \(expectedFlag.debugDescription) and \(expectedPackages.debugDescription)")
        }
        console.command("cat W/reboot-required        # stands for /run/reboot-required, which is untouched", output: flag)
        try checkMetrics(host, agent: agent)
        try checkLines(victim, expected: Behaviour.level2, count: 3, agent: agent)

        // 4: stop everything, checking each step.
        console.phase("4. Stop: the agent on SIGTERM, then the service; remove the work directory")
        try checkSameProcess(victim, identity)
        guard let status = agent.terminate(timeout: 10) else {
            throw DemoFailure("hotpatch-agent (PID \(agent.pid)) did not stop within 10 s of SIGTERM")
        }
        guard status == 0 else { throw DemoFailure("hotpatch-agent (PID \(agent.pid)) \(AgentProcess.describe(status)) after SIGTERM, expected status 0") }
        try checkAgentErrors()
        console.field("agent", "PID \(agent.pid) exited with status 0 after SIGTERM")
        victim.stop()
        console.field("service", "PID \(victim.pid) stopped: the same process from the start, never restarted")
        let root = host.root
        session.host = nil
        guard host.remove() else { throw DemoFailure("could not remove \(root)") }
        console.field("workdir", "\(root) removed")
    }

    // MARK: Publishing

    /// Adds a release with hotpatch-pack, publishes, and copies the channel to the agent's. Returns when it was published.
    private func publish(_ publisher: ChannelBuilder, host: DemoHost, version: Int, releaseCommand: [String], shown: String) throws -> Date {
        try Interruption.shared.check()
        do {
            try publisher.run(releaseCommand)
            try publisher.publish(expiresIn: "1h")
        } catch {
            throw DemoFailure("publishing failed: \(error)")
        }
        try host.mirror(from: publisher.channel)
        console.field("publisher", "\(shown)\nhotpatch-pack publish → index version \(version), copied to W/channel")
        return Date()
    }

    // MARK: Watching the service

    /// Reads the service's lines until one shows `expected`; until then they may only show `previous`.
    private func awaitChange(_ victim: RunningProcess, to expected: String, from previous: String, since: Date, agent: AgentProcess) throws {
        let deadline = since.addingTimeInterval(Self.changeTimeout)
        var lastSeen: String?
        while true {
            try Interruption.shared.check()
            try checkAgent(agent)
            guard Date() < deadline else {
                throw DemoFailure("the service still printed \"\(lastSeen ?? "nothing")\" \(Self.changeTimeout) s after publishing; expected \"\(expected)\"")
            }
            guard let line = try nextLine(victim) else { continue }
            let behaviour = Self.behaviour(of: line)
            if behaviour == expected {
                if let lastSeen { console.service(lastSeen) }
                console.service(line, note: String(format: "%.2f s after publishing", Date().timeIntervalSince(since)))
                return
            }
            guard behaviour == previous else {
                throw DemoFailure("the service (PID \(victim.pid)) printed \"\(line)\", expected \"\(previous)\" or \"\(expected)\"")
            }
            lastSeen = line
        }
    }

    /// Checks that the next `count` lines all show `expected` and that the workers progress; shows the last.
    private func checkLines(_ victim: RunningProcess, expected: String, count: Int, agent: AgentProcess) throws {
        var first: UInt64?, last: UInt64 = 0, lastLine = ""
        var read = 0
        while read < count {
            try Interruption.shared.check()
            try checkAgent(agent)
            guard let line = try nextLine(victim) else { continue }
            guard Self.behaviour(of: line) == expected else {
                throw DemoFailure("the service (PID \(victim.pid)) printed \"\(line)\", expected \"\(expected)\"")
            }
            let calls = line.split(separator: " ").first { $0.hasPrefix("calls=") }.flatMap { UInt64($0.dropFirst(6)) } ?? 0
            if first == nil { first = calls }
            last = calls
            lastLine = line
            read += 1
        }
        guard last > (first ?? 0) else {
            throw DemoFailure("the service's worker threads made no progress (calls stayed at \(last))")
        }
        console.service(lastLine)
        console.field("checked", "\(count) lines, all \(expected); still PID \(victim.pid), never restarted")
    }

    /// The next line, or nil after half a second without one (the service prints every 100 ms).
    private func nextLine(_ victim: RunningProcess) throws -> String? {
        do {
            return try victim.nextLine(timeout: 0.5)
        } catch {
            if !victim.isAlive { throw DemoFailure(Self.death(of: victim)) }
            return nil
        }
    }

    private func reading<T>(_ victim: RunningProcess, _ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            if !victim.isAlive { throw DemoFailure(Self.death(of: victim)) }
            throw DemoFailure("reading the demo service (PID \(victim.pid)) failed: \(error)")
        }
    }

    private func checkSameProcess(_ victim: RunningProcess, _ identity: ProcessIdentity) throws {
        guard victim.isAlive else { throw DemoFailure(Self.death(of: victim)) }
        guard try reading(victim, { try victim.identity() }) == identity else {
            throw DemoFailure("PID \(victim.pid) is no longer the service the demo started (its start time changed)")
        }
    }

    /// How the service ended, for a failure message.
    static func death(of victim: RunningProcess) -> String {
        guard let status = victim.waitStatus else { return "the demo service (PID \(victim.pid)) is gone" }
        return "the demo service (PID \(victim.pid)) \(AgentProcess.describe(status))"
    }

    /// The first two words of a service line: what the code returns.
    private static func behaviour(of line: String) -> String {
        line.split(separator: " ").prefix(2).joined(separator: " ")
    }

    // MARK: The agent

    /// Fails if the agent has ended or logged an error.
    private func checkAgent(_ agent: AgentProcess) throws {
        if let status = agent.exitStatus {
            throw DemoFailure("hotpatch-agent (PID \(agent.pid)) \(AgentProcess.describe(status)) unexpectedly")
        }
        try checkAgentErrors()
    }

    private func checkAgentErrors() throws {
        if let error = console.agentErrors.first { throw DemoFailure("the agent logged an error: \(error)") }
    }

    /// Asks agentctl for the status until `differences` finds none; fails with the last ones at the timeout.
    private func waitForStatus(_ agent: AgentProcess, _ when: String, _ differences: (AgentStatus) -> [String]) throws -> AgentStatus {
        let deadline = Date().addingTimeInterval(Self.statusTimeout)
        var last = ["no answer from the agent yet"]
        while true {
            try Interruption.shared.check()
            try checkAgent(agent)
            if let output = try agentctl(["status", "--json"], unreachableIsNil: true) {
                let status = try Self.decode(AgentStatus.self, output, what: "agentctl status --json")
                last = differences(status)
                if last.isEmpty { return status }
            }
            guard Date() < deadline else {
                throw DemoFailure("\(when), agentctl status --json still shows \(last.joined(separator: "; ")) after \(Self.statusTimeout) s")
            }
            usleep(100_000)
        }
    }

    /// Runs agentctl on the demo's socket; returns its standard output. With `unreachableIsNil`,
    /// status 69 (agent not listening yet) gives nil.
    private func agentctl(_ arguments: [String], unreachableIsNil: Bool = false) throws -> String? {
        guard let socket = socket.value else { throw DemoFailure("agentctl asked before the agent started") }
        let result: ProgramRun
        do {
            result = try Program.run(Products.path("agentctl", in: products), ["--socket", socket] + arguments)
        } catch {
            throw DemoFailure("\(error)")
        }
        if result.status == 69 && unreachableIsNil { return nil }
        guard result.status == 0 else {
            throw DemoFailure("agentctl \(arguments.joined(separator: " ")) exited with status \(result.status): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.stdout
    }

    private func agentctl(_ arguments: [String]) throws -> String {
        try agentctl(arguments, unreachableIsNil: false) ?? ""
    }

    /// Runs `agentctl --socket W/run/control.sock ARGUMENTS` and shows what it printed.
    private func show(_ arguments: [String], host: DemoHost) throws {
        let output: String = try agentctl(arguments)
        // Shown as printed (abbreviating the work directory would misalign its tables).
        console.command("agentctl --socket W/run/control.sock \(arguments.joined(separator: " "))", output: output)
    }

    /// The metrics file shows the same state.
    private func checkMetrics(_ host: DemoHost, agent: AgentProcess) throws {
        let wanted = ["hotpatch_level 2", "hotpatch_reboot_required 1", "hotpatch_processes{state=\"patched\"} 1"]
        let deadline = Date().addingTimeInterval(Self.statusTimeout)
        while true {
            let lines = Set((FileSystem.read(host.metrics) ?? "").split(separator: "\n").map(String.init))
            let missing = wanted.filter { !lines.contains($0) }
            if missing.isEmpty { break }
            try Interruption.shared.check()
            try checkAgent(agent)
            guard Date() < deadline else { throw DemoFailure("W/hotpatch.prom lacks \(missing.joined(separator: ", "))") }
            usleep(100_000)
        }
        console.field("metrics", "W/hotpatch.prom: " + wanted.joined(separator: ", "))
    }

    // MARK: Helpers

    private static func decode<T: Decodable>(_ type: T.Type, _ text: String?, what: String) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data((text ?? "").utf8)) } catch {
            throw DemoFailure("\(what) printed something that is not the documented JSON: \(error)")
        }
    }

    private static func counts(_ status: AgentStatus) -> String {
        "\(status.processes.patched) patched, \(status.processes.pending) pending, \(status.processes.unpatchable) unpatchable"
    }

    /// "name is X (expected Y)" for each pair that differs.
    private static func differences(_ pairs: [(String, String, String)]) -> [String] {
        pairs.compactMap { name, actual, expected in actual == expected ? nil : "\(name) \(actual) (expected \(expected))" }
    }

    /// 20 random bytes as hex: a GNU build-id no other binary on the host has.
    private static func randomBuildID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<20).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// A command line in lines of at most `width` characters, never parting a flag from its value.
    static func wrap(_ words: [String], width: Int) -> String {
        var units: [String] = []
        for word in words {
            if let last = units.last, last.hasPrefix("--"), !last.contains(" "), !word.hasPrefix("--") {
                units[units.count - 1] += " " + word
            } else {
                units.append(word)
            }
        }
        var lines: [String] = [], line = ""
        for word in units {
            if !line.isEmpty, line.count + 1 + word.count > width {
                lines.append(line)
                line = word
            } else {
                line += line.isEmpty ? word : " " + word
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines.joined(separator: "\n")
    }
}

/// A value set once the scenario knows it.
final class Box<Value> {
    var value: Value?
}
