import AgentProtocol
import Engine
import Foundation
import LinuxSystem
import Logging
import ServiceLifecycle
import UnixSignals

/// Wakes the agent's loop early: a change in the channel directory, or the timer.
actor CycleTrigger {
    private var pending = false
    private var waiter: CheckedContinuation<Void, Never>?

    /// Asks for a cycle now.
    func signal() {
        if let waiter {
            self.waiter = nil
            waiter.resume()
        } else {
            pending = true
        }
    }

    /// Returns after `seconds`, or earlier when signalled (or when the task is cancelled).
    func wait(seconds: Double) async {
        if pending {
            pending = false
            return
        }
        let timer = Task {
            try? await Task.sleep(for: .seconds(seconds))
            if !Task.isCancelled { self.signal() }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                waiter = continuation
            }
        } onCancel: {
            Task { await self.signal() }
        }
        timer.cancel()
        pending = false
    }
}

/// Runs the agent's cycles: the first at start (then READY=1), then one every poll interval, at
/// once when the channel directory changes, and sooner while some process is busy (backoff).
public final class AgentLoopService: Service, Sendable {
    private let agent: Agent
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let trigger = CycleTrigger()
    /// Beaten before every cycle and every wait: what the watchdog service pets systemd on.
    public let heartbeat = LoopHeartbeat()
    /// How long one cycle may take before the loop counts as wedged: the unit's start timeout,
    /// since the first cycle (which may install a baseline through dpkg) is the longest.
    public static let cycleAllowance: Duration = .seconds(15 * 60)

    /// A loop over `agent`, reporting to systemd through `notifier`.
    public init(agent: Agent, notifier: SystemdNotifier, logger: Logger) {
        self.agent = agent
        self.notifier = notifier
        self.logger = logger
    }

    /// Asks for a cycle now (SIGHUP after a reload).
    public func wake() async { await trigger.signal() }

    public func run() async throws {
        let directory = await agent.configuration.channelDirectory
        let watcher: ChannelDirectoryWatcher?
        do {
            watcher = try ChannelDirectoryWatcher(directory: directory)
        } catch {
            watcher = nil
            logger.warning("Failed to watch \(directory) for changes, polling only: \(error)")
        }
        let trigger = self.trigger
        let forward = Task {
            guard let watcher else { return }
            for await _ in watcher.changes() { await trigger.signal() }
        }
        defer {
            forward.cancel()
            watcher?.stop()
        }
        heartbeat.beat(allowing: Self.cycleAllowance)
        let first = await agent.runCycle()
        _ = notifier.ready(status: StatusBuilder.summary(first))
        logger.log(event: .started, "Started: \(StatusBuilder.summary(first))")
        await cancelWhenGracefulShutdown {
            var retryDelay = 1.0
            while !Task.isCancelled {
                let pending = await self.agent.hasPendingProcesses
                let interval = Double(await self.agent.configuration.pollIntervalSeconds)
                let wait = pending ? min(retryDelay, interval) : interval
                retryDelay = pending ? min(retryDelay * 2, 60) : 1
                self.heartbeat.beat(allowing: .seconds(wait) + Self.cycleAllowance)
                await trigger.wait(seconds: wait)
                if Task.isCancelled { break }
                self.heartbeat.beat(allowing: Self.cycleAllowance)
                let status = await self.agent.runCycle()
                _ = self.notifier.status(StatusBuilder.summary(status))
            }
        }
        _ = notifier.stopping()
        logger.log(event: .stopping, "Stopping")
    }
}

/// Patches new processes soon after exec, and watches patched ones die: netlink process events
/// when the kernel lets us subscribe, else a periodic scan (status says which). It also follows
/// the kernel log's fault reports, the health check's witness of a real crash.
public final class ProcessWatchService: Service, Sendable {
    private let agent: Agent
    private let logger: Logger
    /// Seconds between scans when process events are not available.
    public let scanIntervalSeconds: Double

    /// A watcher feeding `agent`.
    public init(agent: Agent, logger: Logger, scanIntervalSeconds: Double = 2) {
        self.agent = agent
        self.logger = logger
        self.scanIntervalSeconds = scanIntervalSeconds
    }

    public func run() async throws {
        let watcher = ProcessEventWatcher()
        defer { watcher.stop() }
        let subscribed: Bool
        if case .scan = watcher.mode { subscribed = false } else { subscribed = true }
        // Said first: the first status (READY=1, agentctl) already tells how new processes are found.
        await agent.setProcessWatch(subscribed ? "netlink" : "scan")
        // The kernel's own fault reports tell a real crash from a signal someone sent.
        let faults = KernelFaultLog()
        defer { faults.stop() }
        await agent.useKernelFaultLog(faults)
        if case let .scan(reason) = watcher.mode {
            logger.notice("Process events unavailable (\(reason)); scanning every \(scanIntervalSeconds) s instead")
            await scanUntilShutdown()
            return
        }
        let agent = self.agent
        await cancelWhenGracefulShutdown {
            for await event in watcher.events() {
                switch event {
                case let .exec(pid):
                    // The dynamic linker maps libraries just after exec: look again shortly.
                    await agent.processStarted(pid)
                    Task {
                        for delay in [5, 30] {
                            try? await Task.sleep(for: .milliseconds(delay))
                            await agent.processStarted(pid)
                        }
                    }
                case let .exit(pid, _, signal):
                    await agent.processExited(pid, signal: signal)
                case .overrun:
                    await agent.rescan()
                }
            }
        }
        if !Task.isCancelled && !Task.isShuttingDownGracefully {
            // The event stream ended on its own: fall back to scanning.
            await agent.setProcessWatch("scan")
            logger.warning("Process events stopped; scanning every \(scanIntervalSeconds) s instead")
            await scanUntilShutdown()
        }
    }

    private func scanUntilShutdown() async {
        let agent = self.agent
        let interval = scanIntervalSeconds
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(interval))
                if Task.isCancelled { break }
                await agent.rescan()
            }
        }
    }
}

/// SIGHUP: re-read the configuration and run a cycle with it (RELOADING=1 … READY=1).
public final class ReloadService: Service, @unchecked Sendable {
    private let agent: Agent
    private let loop: AgentLoopService
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let reload: () throws -> AgentConfiguration

    /// A service that reloads `agent` with what `reload` reads, then wakes `loop`.
    public init(agent: Agent, loop: AgentLoopService, notifier: SystemdNotifier, logger: Logger,
         reload: @escaping () throws -> AgentConfiguration) {
        self.agent = agent
        self.loop = loop
        self.notifier = notifier
        self.logger = logger
        self.reload = reload
    }

    /// Handles SIGHUP until a graceful shutdown.
    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                _ = self.notifier.reloading()
                do {
                    let configuration = try self.reload()
                    await self.agent.reload(configuration)
                    await self.loop.wake()
                } catch {
                    self.logger.log(event: .reloaded, level: .error, "Failed to reload the configuration, keeping the current one: \(error)",
                                    metadata: ["reason": "\(error)"])
                }
                _ = self.notifier.ready(status: StatusBuilder.summary(await self.agent.status()))
            }
        }
    }
}
