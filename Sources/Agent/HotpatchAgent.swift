import AgentCore
import AgentProtocol
import Engine
import Logging
import ArgumentParser
import Foundation
import ServiceLifecycle

/// `hotpatch-agent`: wiring only — configuration, logging, the agent and its services.
@main
struct HotpatchAgent: AsyncParsableCommand {
    static let version = "0.2.0"

    static let configuration = CommandConfiguration(
        commandName: "hotpatch-agent",
        abstract: "Keep running processes hotpatched from a signed update channel.",
        discussion: """
        Runs as a systemd service (Type=notify) or in the foreground. Configuration comes from
        /etc/hotpatch-agent/agent.toml (embedded defaults when missing); every key can be
        overridden by the flag of the same name. See docs/CONFIGURATION.md.

        Exit statuses of --once: the verdict's, \(ExitStatus.verdictSummary); any mode: \
        \(ExitStatus.summary([.usage, .configuration])). Meanings: \(ExitStatus.documentation).

        Example:
          hotpatch-agent --once --channel /srv/channel --trusted-keys /etc/hotpatch-agent/keys
        """,
        version: version)

    @Option(help: "Configuration file.") var config: String?
    @Option(help: "Channel directory (key channel).") var channel: String?
    @Option(name: .customLong("trusted-keys"), help: "Directory of trusted public keys.") var trustedKeys: String?
    @Option(name: .customLong("state-dir"), help: "State directory.") var stateDir: String?
    @Option(name: .customLong("runtime-dir"), help: "Runtime directory (control.sock lives there).") var runtimeDir: String?
    @Option(name: .customLong("poll-interval"), help: "How often to poll the channel, e.g. 5m.") var pollInterval: String?
    @Option(name: .customLong("reboot-policy"), help: "never, request or auto.") var rebootPolicy: String?
    @Option(name: .customLong("reboot-window"), help: "Maintenance window for auto reboots, e.g. 'Sun 02:00-04:00'.") var rebootWindow: String?
    @Option(name: .customLong("reboot-required-file"), help: "Debian's reboot flag file (.pkgs beside it).") var rebootRequiredFile: String?
    @Option(name: .customLong("metrics-file"), help: "Prometheus node-exporter textfile to write.") var metricsFile: String?
    @Option(name: .customLong("exclude-executable"), help: "Executable glob never patched (repeatable).") var excludeExecutable: [String] = []
    @Option(name: .customLong("exclude-unit"), help: "systemd unit never patched (repeatable).") var excludeUnit: [String] = []
    @Option(name: .customLong("deadline"), help: "With --once: how long busy processes are retried, e.g. 30s.") var deadline: String?
    @Option(name: .customLong("allow-writable-channel"), help: "true or false: accept a channel writable by others than root.") var allowWritableChannel: String?
    @Option(name: .customLong("strict-stack-check"), help: "true or false: do not patch while a stack holds a return address into a patched function.") var strictStackCheck: String?
    @Option(name: .customLong("exec-gate"), help: "true or false: hold a new process that execs or loads a targeted file until it is patched, so it runs the fix from its first call.") var execGate: String?
    @Option(name: .customLong("health-window"), help: "A fatal crash this soon after patching quarantines the hotpatch, e.g. 60s.") var healthWindow: String?
    @Option(name: .customLong("kernel-transition-timeout"), help: "How long a kernel live patch's transition may take before it counts as stalled, e.g. 60s.") var kernelTransitionTimeout: String?
    @Option(name: .customLong("log-target"), help: "auto, journal or stderr.") var logTarget: String = "auto"
    @Flag(help: "Run one full cycle in the foreground, then exit.") var once = false

    func run() async throws {
        Heap.limitArenas()
        var configuration: AgentConfiguration
        do {
            configuration = try loadConfiguration()
        } catch {
            FileHandle.standardError.write(Data("hotpatch-agent: \(error)\n".utf8))
            throw ExitCode(ExitStatus.configuration.code)
        }
        guard let target = LogTarget(rawValue: logTarget) else {
            FileHandle.standardError.write(Data("hotpatch-agent: --log-target must be auto, journal or stderr\n".utf8))
            throw ExitCode(ExitStatus.usage.code)
        }
        LogBackend.bootstrap(target: target)
        let logger = Logger(label: "hotpatch-agent")
        try? FileManager.default.createDirectory(atPath: configuration.runtimeDirectory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o755])
        let agent = Agent(configuration: configuration, logger: logger, version: Self.version)
        let notifier = SystemdNotifier()
        let metricsFile = configuration.metricsFile
        await agent.onStatus { status in
            if let metricsFile {
                do { try MetricsWriter.write(status, to: metricsFile, now: Date()) } catch {
                    logger.warning("Failed to write metrics to \(metricsFile): \(error), ignoring")
                }
            }
        }
        if once {
            let status = await OnceRun.run(agent, deadlineSeconds: configuration.onceDeadlineSeconds)
            FileHandle.standardError.write(Data(OnceRun.report(status).utf8))
            throw ExitCode(OnceRun.exitStatus(status).code)
        }
        // The first cycle patches only once the process watch can see a patched process die.
        let watches = WatchReadiness()
        let loop = AgentLoopService(agent: agent, notifier: notifier, logger: logger, watches: watches)
        let services: [any Service] = [
            loop,
            ProcessWatchService(agent: agent, logger: logger, watches: watches),
            ControlServer(socketPath: configuration.socketPath, handler: agent, logger: logger),
            WatchdogService(notifier: notifier, heartbeat: loop.heartbeat, logger: logger),
            ReloadService(agent: agent, loop: loop, notifier: notifier, logger: logger, reload: { try loadConfiguration() }),
        ]
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let deadline = ShutdownDeadline.exitingAgent(logger: logger)
        defer { withExtendedLifetime(deadline) {} }
        try await group.run()
    }

    /// The file (or embedded defaults), then the flags on top, validated.
    func loadConfiguration() throws -> AgentConfiguration {
        var configuration = try AgentConfiguration.load(path: config ?? AgentConfiguration.defaultPath, mustExist: config != nil)
        let single: [(ConfigurationKey, String?)] = [
            (.channel, channel), (.trustedKeys, trustedKeys), (.stateDir, stateDir), (.runtimeDir, runtimeDir),
            (.pollInterval, pollInterval), (.reboot, rebootPolicy), (.rebootWindow, rebootWindow),
            (.rebootRequiredFile, rebootRequiredFile), (.metricsFile, metricsFile), (.deadline, deadline),
            (.allowWritableChannel, allowWritableChannel), (.strictStackCheck, strictStackCheck), (.execGate, execGate), (.healthWindow, healthWindow),
            (.kernelTransitionTimeout, kernelTransitionTimeout),
        ]
        for (key, value) in single { if let value { try configuration.override(key, with: [value]) } }
        if !excludeExecutable.isEmpty { try configuration.override(.excludeExecutables, with: excludeExecutable) }
        if !excludeUnit.isEmpty { try configuration.override(.excludeUnits, with: excludeUnit) }
        return try configuration.validated()
    }
}
