import Artifact
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem

/// The first apply of a run: it maps the patch object into the process (injected system calls).
struct FirstApply: Codable {
    /// The redirect's stop window.
    var pauseMicroseconds: UInt64
    /// The load's hold of every thread while the calls were checked and injected.
    var loadPauseMicroseconds: UInt64
    var totalMicroseconds: UInt64
    var injectedSystemCalls: Int
    /// How many times the injection thread stopped for those calls (round trips to the agent).
    var injectionStops: Int
}

/// Where the time of one kind of stop went: the median of each step's own length (`StopWindowTimes`).
struct StopSteps: Codable {
    var seize: UInt64
    var stop: UInt64
    var check: UInt64
    var verify: UInt64
    var evacuate: UInt64
    var write: UInt64
    var release: UInt64
    /// The median pause of the same stops, for comparison with the sum of the medians.
    var pause: UInt64
    /// Stops that were released and taken again (a thread inside a window), and the median of
    /// what those earlier stops held the process for, over the stops that had any.
    var restoppedStops: Int
    var earlierStops: UInt64

    init(_ samples: [StopWindowTimes]) {
        func median(_ step: (StopWindowTimes) -> UInt64) -> UInt64 { Distribution(samples.map(step)).median }
        seize = median(\.seized)
        stop = median { $0.stopped - $0.seized }
        check = median { $0.checked - $0.stopped }
        verify = median { $0.verified - $0.checked }
        evacuate = median { $0.evacuated - $0.verified }
        write = median { $0.written - $0.evacuated }
        release = median { $0.released - $0.written }
        pause = median(\.released)
        let restopped = samples.filter { $0.restops > 0 }
        restoppedStops = restopped.count
        earlierStops = Distribution(restopped.map(\.earlierStopsMicroseconds)).median
    }
}

/// Apply/revert cycles on one busy victim.
struct VictimResult: Codable {
    /// Busy worker threads asked for (the victim also has its main thread).
    var busyThreads: Int
    /// Threads held in each stop window.
    var heldThreads: Int
    var cycles: Int
    /// Every stop except the first apply's (each apply and each revert is one stop).
    var pause: Distribution
    var applyPause: Distribution
    var revertPause: Distribution
    /// The floor on the same victim, one sample next to each stop of the cycles (the first
    /// apply's included; before the stop in even cycles, after it in odd ones): every thread seized, stopped and released at the stop window's
    /// priority, nothing written (`Patcher.stopFloor`).
    var floor: Distribution
    /// Floor samples that stayed busy (a thread did not stop in time): no sample.
    var floorsBusy: Int
    /// The steps of the pauses counted in `pause`, and of the floor samples.
    var pauseSteps: StopSteps
    var floorSteps: StopSteps
    /// Signals sent to the victim during the cycles (one every `--victim-signal-us`), and how many
    /// its handler counted (standard signals pending at once merge, so at most as many).
    var signalsSent: Int
    var signalsSeen: Int
    /// Whole operation (first look to last detach) of the applies after the first.
    var applyTotal: Distribution
    var revertTotal: Distribution
    var firstApply: FirstApply
    /// The load's hold (every thread stopped) of the first apply into fresh victims of this size,
    /// the cycles' victim included (`--load-samples`).
    var loadPause: Distribution
    /// Fresh victims whose first apply stayed busy (a thread not stopping in time) for 20 tries:
    /// no load pause sample.
    var loadsBusy: Int
    /// Threads single-stepped out of a patch window, over all stops.
    var evacuations: Int
    /// Stops whose outcome was not applied/reverted as expected (busy, unpatchable, …).
    var unexpectedOutcomes: [String]
    /// Output checks (patched value after each apply, original after each revert) that passed.
    var behaviourChecks: Int
    var aliveAtEnd: Bool
}

enum VictimBench {
    /// Runs `cycles` apply/revert cycles on a victim with `threads` busy threads, and first applies
    /// into `loadSamples - 1` more fresh victims for the load's pause.
    static func run(threads: Int, cycles: Int, loadSamples: Int, signalIntervalMicroseconds: UInt64, fixtures: BenchFixtures,
                    options: PatchOptions, log: (String) -> Void) throws -> VictimResult {
        let target = fixtures.victim.level1.targets[0]
        let victim = try BenchChild(fixtures.victimPath, ["--threads", String(threads), "--interval-ms", "10"])
        defer { victim.stop() }
        _ = try victim.process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        let tracer = TracerThread(name: "bench-tracer")
        defer { tracer.shutdown() }
        var timedOptions = options
        timedOptions.timesStopWindow = true
        let patcher = Patcher(options: timedOptions)
        guard let match = TargetFinder(cache: patcher.cache).find(buildIDs: [target.buildID], in: ProcessID(victim.pid)).first else {
            throw BenchFailure("victim \(victim.pid) does not map \(target.buildID)")
        }

        func behaviour() throws -> String {
            // The second line after draining: the first may have been computed before the stop.
            _ = try victim.process.freshLine(timeout: 5)
            let line = try victim.process.nextLine(timeout: 5)
            return line.split(separator: " ").prefix(2).joined(separator: " ")
        }
        /// The victim's count of signals handled, from a fresh line.
        func signalsCounted() throws -> Int {
            _ = try victim.process.freshLine(timeout: 5)
            let line = try victim.process.nextLine(timeout: 5)
            return line.split(separator: " ").first { $0.hasPrefix("signals=") }.flatMap { Int($0.dropFirst("signals=".count)) } ?? -1
        }
        func expect(_ wanted: String, after what: String) throws {
            let seen: String
            do { seen = try behaviour() } catch {
                throw BenchFailure("victim (\(threads) threads) after \(what): \(error); wait status \(victim.process.isAlive ? "running" : String(victim.process.waitStatus ?? -1))")
            }
            guard seen == wanted else { throw BenchFailure("victim (\(threads) threads) after \(what) prints '\(seen)', expected '\(wanted)'") }
        }
        try expect("parse_length(100)=100 banner=1", after: "start")
        let signals = signalIntervalMicroseconds > 0 ? SignalTimer(pid: victim.pid, signal: SIGUSR1, everyMicroseconds: signalIntervalMicroseconds) : nil
        defer { signals?.stop() }

        var floors: [StopWindowTimes] = []
        var floorsBusy = 0
        /// One floor sample on the victim, on the same tracer thread and priority as the stops.
        func sampleFloor() throws {
            let measured = try tracer.perform { () -> Result<StopWindowTimes, StopFloorRefusal> in
                do throws(StopFloorRefusal) { return .success(try patcher.stopFloor(of: match.process)) } catch { return .failure(error) }
            }
            switch measured {
            case let .success(times): floors.append(times)
            case let .failure(refusal):
                guard case .busy = refusal.outcome else { throw BenchFailure("floor on the victim (\(threads) threads): \(refusal.outcome)") }
                floorsBusy += 1
            }
        }

        var applies: [ProcessPatchReport] = []
        var steps: [(report: ProcessPatchReport, times: StopWindowTimes?)] = []
        var reverts: [ProcessPatchReport] = []
        var unexpected: [String] = []
        var checks = 0
        /// One apply or revert; when it has the outcome wanted, the victim must print `line`.
        /// The floor is sampled next to each stop, before it in even cycles and after it in odd
        /// ones: whichever comes first finds the tracer idle since the last output check.
        func step(to desired: HotpatchTarget?, wanting outcome: PatchOutcome, line: String, floorFirst: Bool,
                  _ label: String) throws -> ProcessPatchReport {
            if floorFirst { try sampleFloor() }
            let (report, times) = try tracer.perform { (patcher.reconcile(match, desired: desired, known: [target]), patcher.lastStopWindow) }
            if !floorFirst { try sampleFloor() }
            steps.append((report, times))
            if report.outcome == outcome {
                try expect(line, after: label)
                checks += 1
            } else {
                unexpected.append("\(label): \(report.outcome)")
            }
            return report
        }
        for cycle in 0..<cycles {
            let floorFirst = cycle % 2 == 0
            applies.append(try step(to: target, wanting: .applied, line: "parse_length(100)=64 banner=2", floorFirst: floorFirst,
                                    "apply \(cycle + 1)"))
            reverts.append(try step(to: nil, wanting: .reverted, line: "parse_length(100)=100 banner=1", floorFirst: floorFirst,
                                    "revert \(cycle + 1)"))
            if (cycle + 1) % 10 == 0 { log("  \(threads) threads: \(cycle + 1)/\(cycles) cycles") }
        }
        let signalsSent = signals?.stop() ?? 0
        let signalsSeen = try signalsCounted()
        let alive = victim.process.isAlive
        guard alive else {
            throw BenchFailure("victim with \(threads) threads DIED during the benchmark (wait status \(victim.process.waitStatus ?? -1))")
        }
        guard let condition = ProcessCondition.read(victim.pid), condition.isHealthyAndFree else {
            throw BenchFailure("victim with \(threads) threads is left stopped or traced after the benchmark")
        }

        let first = applies[0]
        var loadPauses = first.loadPauseMicroseconds.map { [$0] } ?? []
        var loadsBusy = 0
        for _ in 1..<max(1, loadSamples) {
            if let pause = try firstLoadPause(threads: threads, fixtures: fixtures, options: options, tracer: tracer) {
                loadPauses.append(pause)
            } else {
                loadsBusy += 1
            }
        }
        let laterApplies = applies.dropFirst().filter { $0.outcome == .applied }
        let goodReverts = reverts.filter { $0.outcome == .reverted }
        let stops = (laterApplies + goodReverts).compactMap(\.pauseMicroseconds)
        // The steps of the same stops as `pause`: every good one but the first apply's.
        let counted = steps.dropFirst().filter { $0.report.outcome == .applied || $0.report.outcome == .reverted }.compactMap(\.times)
        return VictimResult(
            busyThreads: threads, heldThreads: first.threadCount, cycles: cycles,
            pause: Distribution(stops),
            applyPause: Distribution(laterApplies.compactMap(\.pauseMicroseconds)),
            revertPause: Distribution(goodReverts.compactMap(\.pauseMicroseconds)),
            floor: Distribution(floors.map(\.released)), floorsBusy: floorsBusy,
            pauseSteps: StopSteps(counted), floorSteps: StopSteps(floors),
            signalsSent: signalsSent, signalsSeen: signalsSeen,
            applyTotal: Distribution(laterApplies.map(\.totalMicroseconds)),
            revertTotal: Distribution(goodReverts.map(\.totalMicroseconds)),
            firstApply: FirstApply(pauseMicroseconds: first.pauseMicroseconds ?? 0, loadPauseMicroseconds: first.loadPauseMicroseconds ?? 0,
                                   totalMicroseconds: first.totalMicroseconds, injectedSystemCalls: first.injectedSystemCalls,
                                   injectionStops: first.injectionStops),
            loadPause: Distribution(loadPauses), loadsBusy: loadsBusy,
            evacuations: (applies + reverts).map(\.evacuatedThreads).reduce(0, +),
            unexpectedOutcomes: unexpected, behaviourChecks: checks, aliveAtEnd: alive)
    }

    /// The load's pause of a first apply into a fresh victim with `threads` busy threads; nil when
    /// it stayed busy (on a loaded machine a thread may not stop within the deadline).
    private static func firstLoadPause(threads: Int, fixtures: BenchFixtures, options: PatchOptions,
                                       tracer: TracerThread) throws -> UInt64? {
        let target = fixtures.victim.level1.targets[0]
        let victim = try BenchChild(fixtures.victimPath, ["--threads", String(threads), "--interval-ms", "10"])
        defer { victim.stop() }
        _ = try victim.process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        let patcher = Patcher(options: options)
        guard let match = TargetFinder(cache: patcher.cache).find(buildIDs: [target.buildID], in: ProcessID(victim.pid)).first else {
            throw BenchFailure("victim \(victim.pid) does not map \(target.buildID)")
        }
        // Busy is retried as the agent would; the load's pause is the one of the call that mapped the image.
        var loadPause: UInt64?
        var report: ProcessPatchReport
        var tries = 0
        while true {
            report = try tracer.perform { patcher.reconcile(match, desired: target, known: [target]) }
            if report.injectedSystemCalls > 0 { loadPause = report.loadPauseMicroseconds }
            tries += 1
            guard case .busy = report.outcome, tries < 20 else { break }
            usleep(10_000)
        }
        guard victim.process.isAlive else { throw BenchFailure("a fresh victim with \(threads) threads DIED after its first apply") }
        if case .busy = report.outcome, loadPause == nil { return nil }
        guard report.outcome == .applied, let loadPause else {
            throw BenchFailure("first apply into a fresh victim with \(threads) threads: \(report.outcome)")
        }
        return loadPause
    }
}

/// Sends a signal to a process at a fixed interval from its own thread, as a timer in the victim
/// would (a process-directed signal, taken by whichever thread does not block it): the signals a
/// stop must hold and deliver again.
final class SignalTimer: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private var sent = 0
    private let done = DispatchSemaphore(value: 0)

    init(pid: Int32, signal: Int32, everyMicroseconds interval: UInt64) {
        let thread = Thread { [self] in
            var next = Monotonic.now
            while lock.withLock({ running }) {
                if kill(pid, signal) == 0 { lock.withLock { sent += 1 } }
                next = next.adding(microseconds: interval)
                let now = Monotonic.now
                if next > now { Monotonic.sleep(microseconds: next.microseconds(since: now)) } else { next = now }
            }
            done.signal()
        }
        thread.name = "bench-signal-timer"
        thread.start()
    }

    /// Stops the timer and returns how many signals it sent; later calls return the same count.
    @discardableResult
    func stop() -> Int {
        let wasRunning = lock.withLock { () -> Bool in
            defer { running = false }
            return running
        }
        if wasRunning { done.wait() }
        return lock.withLock { sent }
    }
}
