import HotpatchFixtures
import Foundation
@testable import AgentCore
import Glibc
import Logging
import Synchronization
import ServiceLifecycle
import Testing

/// Sets environment variables for the duration of `body`, then restores them.
///
/// libsystemd reads NOTIFY_SOCKET and WATCHDOG_* from the process environment, so the tests must
/// set them for real; the suite is serialized so no two tests fight over them.
private func withEnvironment<T>(_ values: [String: String?], _ body: () async throws -> T) async rethrows -> T {
    var saved: [String: String?] = [:]
    for (name, value) in values {
        saved[name] = getenv(name).map { String(cString: $0) }
        if let value { setenv(name, value, 1) } else { unsetenv(name) }
    }
    defer {
        for (name, value) in saved {
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
    }
    return try await body()
}

/// Every datagram already queued, as text.
private func drain(_ receiver: DatagramReceiver) -> [String] {
    var messages: [String] = []
    while let datagram = receiver.receive(milliseconds: 0) { messages.append(String(decoding: datagram, as: UTF8.self)) }
    return messages
}

@Suite(.serialized) struct NotifyTests {
    private func socketPath(_ name: String) -> String { "/tmp/hotpatch-notify-\(getpid())-\(name).sock" }

    @Test func outsideSystemdNothingIsSentAndNoWatchdogIsArmed() async {
        await withEnvironment(["NOTIFY_SOCKET": nil, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            let notifier = SystemdNotifier()
            #expect(!notifier.isUnderSystemd)
            #expect(!notifier.ready(status: "idle"))
            #expect(notifier.watchdogInterval == nil)
        }
    }

    @Test func readySendsReadyAndTheStatusLineInOneDatagram() async throws {
        let receiver = try DatagramReceiver(path: socketPath("ready"))
        try await withEnvironment(["NOTIFY_SOCKET": receiver.path]) {
            let notifier = SystemdNotifier()
            #expect(notifier.isUnderSystemd)
            #expect(notifier.ready(status: "up to date\n3 processes patched"))
            let message = try #require(receiver.receive())
            #expect(String(decoding: message, as: UTF8.self) == "READY=1\nSTATUS=up to date 3 processes patched")
        }
    }

    @Test func statusWatchdogAndStoppingSendTheirAssignments() async throws {
        let receiver = try DatagramReceiver(path: socketPath("verbs"))
        await withEnvironment(["NOTIFY_SOCKET": receiver.path]) {
            let notifier = SystemdNotifier()
            notifier.status("checking channel")
            notifier.watchdog()
            notifier.stopping()
            let messages = [receiver.receive(), receiver.receive(), receiver.receive()].compactMap { $0 }
                .map { String(decoding: $0, as: UTF8.self) }
            #expect(messages == ["STATUS=checking channel", "WATCHDOG=1", "STOPPING=1"])
        }
    }

    @Test func reloadingCarriesTheCurrentMonotonicTimeAsSystemd253Wants() async throws {
        let receiver = try DatagramReceiver(path: socketPath("reload"))
        try await withEnvironment(["NOTIFY_SOCKET": receiver.path]) {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let before = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
            #expect(SystemdNotifier().reloading())
            let text = String(decoding: try #require(receiver.receive()), as: UTF8.self)
            let lines = text.split(separator: "\n")
            #expect(lines.first == "RELOADING=1")
            let usec = try #require(lines.last.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) })
            #expect(lines.last?.hasPrefix("MONOTONIC_USEC=") == true)
            #expect(usec >= before && usec < before + 5_000_000)
        }
    }

    @Test func watchdogIntervalComesFromWatchdogUsecForThisProcessOnly() async {
        await withEnvironment(["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": String(getpid())]) {
            #expect(SystemdNotifier().watchdogInterval == .seconds(3))
        }
        // systemd sets WATCHDOG_PID so a child that inherits the environment does not ping for us.
        await withEnvironment(["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": String(getpid() + 1)]) {
            #expect(SystemdNotifier().watchdogInterval == nil)
        }
    }

    @Test func watchdogServicePingsAtHalfTheIntervalAndStopsOnGracefulShutdown() async throws {
        let receiver = try DatagramReceiver(path: socketPath("watchdog"))
        try await withEnvironment([
            "NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": String(getpid()),
        ]) {
            let service = WatchdogService()
            #expect(service.pingPeriod == .milliseconds(100))
            let group = ServiceGroup(services: [service], logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                let started = ContinuousClock.now
                tasks.addTask { try await group.run() }
                // Pings at 0, 100, 200 ms: wait for three (a loaded two-core host may delay them,
                // so the deadline is generous), then check they did not come faster than the period.
                var pings: [String] = []
                while pings.count < 3, ContinuousClock.now - started < .seconds(5) {
                    try await Task.sleep(for: .milliseconds(20))
                    pings += drain(receiver)
                }
                let elapsed = ContinuousClock.now - started
                #expect(pings.allSatisfy { $0 == "WATCHDOG=1" })
                #expect(pings.count >= 3, "\(pings.count) pings in \(elapsed)")
                #expect(elapsed >= .milliseconds(150), "three pings within \(elapsed): faster than every 100 ms")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            _ = drain(receiver)
            try await Task.sleep(for: .milliseconds(250))
            #expect(drain(receiver).isEmpty, "pinged after shutdown")
        }
    }

    @Test func agentLoop_sendsReadyOnlyAfterTheWatchesAreInPlace_andItsFirstCycle() async throws {
        let receiver = try DatagramReceiver(path: socketPath("loop"))
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let configuration = AgentConfiguration.defaults(under: directory.path)
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let agent = Agent(configuration: configuration, logger: logger, version: "test", workers: 1)
        let cycles = SharedCount()
        await agent.onStatus { _ in cycles.increment() }
        try await withEnvironment(["NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            let watches = WatchReadiness()
            // A limit no busy test machine reaches: only the declaration may start the first cycle.
            let loop = AgentLoopService(agent: agent, notifier: SystemdNotifier(), logger: logger, watches: watches,
                                        watchesLimit: .seconds(3600))
            let running = Task { try await loop.run() }
            defer { running.cancel() }
            try await Task.sleep(for: .milliseconds(500))
            #expect(cycles.value == 0, "the first cycle ran before the process watch was in place")
            #expect(drain(receiver).isEmpty, "READY=1 before the process watch was in place")
            watches.declareReady()
            let ready = try #require(receiver.receive(milliseconds: 30_000), "no READY=1 after the watches were declared ready")
            #expect(String(decoding: ready, as: UTF8.self).hasPrefix("READY=1\nSTATUS="))
            #expect(cycles.value >= 1, "READY=1 came before the first cycle")
            running.cancel()
            _ = try? await running.value
        }
    }

    @Test func agentLoop_sendsReadyOnlyOnceTheFirstCyclesKernelStepEnded() async throws {
        let receiver = try DatagramReceiver(path: socketPath("kernel"))
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let kernel = HeldKernel()
        let agent = Agent(configuration: AgentConfiguration.defaults(under: directory.path), logger: logger, version: "test", workers: 1,
                          kernelCycle: kernel.cycle)
        try await withEnvironment(["NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            let loop = AgentLoopService(agent: agent, notifier: SystemdNotifier(), logger: logger, watches: nil)
            let running = Task { try await loop.run() }
            defer { running.cancel() }
            try await kernel.wait { $0.holding }
            try await Task.sleep(for: .milliseconds(300))
            #expect(drain(receiver).isEmpty, "READY=1 while the first cycle's kernel step still waited")
            kernel.letEnd()
            let ready = try #require(receiver.receive(milliseconds: 30_000), "no READY=1 after the kernel step ended")
            #expect(String(decoding: ready, as: UTF8.self).hasPrefix("READY=1\nSTATUS="))
            running.cancel()
            kernel.letEnd()
            _ = try? await running.value
        }
    }

    @Test func watchdogServiceWithoutAWatchdogWaitsQuietlyForShutdown() async throws {
        let receiver = try DatagramReceiver(path: socketPath("nowatchdog"))
        try await withEnvironment(["NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            let service = WatchdogService()
            #expect(service.pingPeriod == nil)
            let group = ServiceGroup(services: [service], logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await Task.sleep(for: .milliseconds(100))
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(drain(receiver).isEmpty)
        }
    }

    // MARK: Issue 14, finding 8: the watchdog is fed only while the main loop is alive

    @Test func heartbeat_isAliveUntilItsAllowanceRunsOut() {
        let heartbeat = LoopHeartbeat()
        let start = ContinuousClock.now
        #expect(heartbeat.isAlive(at: start), "alive before the loop's first beat")
        heartbeat.beat(allowing: .seconds(10), now: start)
        #expect(heartbeat.isAlive(at: start + .seconds(10)))
        #expect(heartbeat.overdue(at: start + .seconds(10)) == nil)
        #expect(!heartbeat.isAlive(at: start + .seconds(11)))
        #expect(heartbeat.overdue(at: start + .seconds(11)) == .seconds(1))
        heartbeat.beat(allowing: .seconds(5), now: start + .seconds(11))
        #expect(heartbeat.isAlive(at: start + .seconds(12)), "a new beat revives it")
    }

    @Test func watchdogService_stopsPettingWhenTheLoopMissesItsBeat_andResumesWhenItBeatsAgain() async throws {
        let receiver = try DatagramReceiver(path: socketPath("heartbeat"))
        try await withEnvironment([
            "NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": String(getpid()),
        ]) {
            let heartbeat = LoopHeartbeat()
            heartbeat.beat(allowing: .seconds(60))
            let service = WatchdogService(heartbeat: heartbeat)
            let group = ServiceGroup(services: [service], logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await Task.sleep(for: .milliseconds(250))
                #expect(!drain(receiver).isEmpty, "a live loop is petted")
                // A wedged loop: its last promise ran out.
                heartbeat.beat(allowing: .zero, now: .now - .seconds(1))
                try await Task.sleep(for: .milliseconds(150))
                _ = drain(receiver)
                try await Task.sleep(for: .milliseconds(350))
                #expect(drain(receiver).isEmpty, "petted although the loop missed its beat")
                heartbeat.beat(allowing: .seconds(60))
                try await Task.sleep(for: .milliseconds(350))
                #expect(!drain(receiver).isEmpty, "not petted again after the loop beat again")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }

    @Test func shutdownDeadline_firesOnlyAfterTheSignalAndItsLimit() async throws {
        final class Moment: Sendable { let value = Mutex<ContinuousClock.Instant?>(nil) }
        let moment = Moment()
        let armedAt = ContinuousClock.now
        let deadline = ShutdownDeadline(signals: [SIGUSR2], limit: .milliseconds(300)) {
            moment.value.withLock { $0 = .now }
        }
        try await Task.sleep(for: .milliseconds(400))
        #expect(moment.value.withLock { $0 } == nil, "fired without a signal")
        let sent = ContinuousClock.now
        kill(getpid(), SIGUSR2)
        kill(getpid(), SIGUSR2)  // a second signal does not shorten or repeat the deadline
        let until = ContinuousClock.now + .seconds(10)
        while moment.value.withLock({ $0 }) == nil && ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(20)) }
        let when = try #require(moment.value.withLock { $0 }, "never fired")
        #expect(when - sent >= .milliseconds(300))
        #expect(when > armedAt)
        withExtendedLifetime(deadline) {}
    }
}
