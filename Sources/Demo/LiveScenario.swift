import Artifact
import Engine
import Foundation
import HotpatchFixtures
import LinuxSystem

/// Something in the demo did not happen as expected; the text says what, for a person.
struct DemoFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The demo itself: start the victim, watch it, apply level 1, replace it by level 2, revert, and
/// check after each step that the same process now behaves as that step promises.
struct LiveScenario {
    /// Busy worker threads in the victim (it has one more: its main thread, which prints).
    let threads: Int
    /// How long each phase's output is watched.
    let secondsPerPhase: Double
    let console: Console

    /// The victim prints a line every this many milliseconds.
    static let intervalMilliseconds = 100
    /// At most this many lines of each phase are shown; every line is checked.
    static let linesShownPerPhase = 4
    /// A busy outcome (threads did not stop in time) is retried this many times, as the agent would.
    static let attempts = 5

    /// The behaviours the victim's lines show (their first two words).
    enum Behaviour {
        static let original = "parse_length(100)=100 banner=1"
        static let level1 = "parse_length(100)=64 banner=2"
        static let level2 = "parse_length(100)=32 banner=1"
    }

    /// Runs the whole scenario; never throws: a failure is recorded with its reason.
    func run() -> DemoRecord {
        var record = DemoRecord(threads: threads, secondsPerPhase: secondsPerPhase)
        do {
            try perform(&record)
            record.ok = true
        } catch {
            record.error = "\(error)"
        }
        return record
    }

    private func perform(_ record: inout DemoRecord) throws {
        let builder = FixtureBuilder()
        let victimPath: String
        let hotpatches: VictimHotpatches
        do {
            victimPath = try builder.victim()
            hotpatches = try VictimHotpatches(builder: builder, victimPath: victimPath)
        } catch {
            throw DemoFailure("building the fixtures failed: \(error)")
        }
        let levels = [hotpatches.level1, hotpatches.level2]

        let victim: RunningProcess
        do {
            victim = try RunningProcess(victimPath, ["--threads", "\(threads)", "--interval-ms", "\(Self.intervalMilliseconds)"])
        } catch {
            throw DemoFailure("starting the victim \(victimPath) failed: \(error)")
        }
        defer { victim.stop() }
        _ = try watching(victim) { try victim.waitForLine(timeout: 10) { $0.hasPrefix("ready") } }
        let identity = try watching(victim) { try victim.identity() }
        record.pid = victim.pid
        console.introduction(pid: victim.pid, threads: threads, fixtures: builder.outputDirectory,
                             interval: Self.intervalMilliseconds, levels: levels)

        let patcher = HostPatcher(workers: 1)
        console.phase("Before: the original code runs")
        var phases = [PhaseRecord(title: "original", expected: Behaviour.original, report: nil,
                                  observation: try observe(victim, expected: Behaviour.original, previous: nil))]

        let changes: [(title: String, desired: Hotpatch?, outcome: PatchOutcome, expected: String)] = [
            ("Apply level 1 live: clamp to 64, banner 2", hotpatches.level1, .applied, Behaviour.level1),
            ("Replace level 1 by level 2 in one stop: clamp to 32, banner change gone", hotpatches.level2, .applied, Behaviour.level2),
            ("Revert: back to the original code", nil, .reverted, Behaviour.original),
        ]
        var previous = Behaviour.original
        for change in changes {
            console.phase(change.title)
            let report = try apply(change.desired, known: levels, expecting: change.outcome, to: victim, with: patcher)
            let observation = try observe(victim, expected: change.expected, previous: previous)
            phases.append(PhaseRecord(title: change.desired?.id ?? "reverted", expected: change.expected,
                                      report: ReportRecord(report), observation: observation))
            previous = change.expected
        }
        record.phases = phases

        console.phase("After")
        guard victim.isAlive else { throw DemoFailure(Self.death(of: victim)) }
        let now = try watching(victim) { try victim.identity() }
        guard now == identity else {
            throw DemoFailure("PID \(victim.pid) is no longer the process the demo started (its start time changed)")
        }
        record.sameProcess = true
        let first = phases.first?.observation.firstCalls ?? 0
        let last = phases.last?.observation.lastCalls ?? 0
        console.survived(pid: victim.pid, calls: last &- first)
        victim.stop()
        console.stopped(pid: victim.pid)
    }

    /// Brings the victim to `desired` with the Engine, retrying a busy outcome, and checks the report.
    private func apply(_ desired: Hotpatch?, known: [Hotpatch], expecting: PatchOutcome, to victim: RunningProcess,
                       with patcher: HostPatcher) throws -> ProcessPatchReport {
        for attempt in 1...Self.attempts {
            let matches = patcher.matches(for: known, among: [ProcessID(victim.pid)])
            guard matches.count == 1 else {
                if !victim.isAlive { throw DemoFailure(Self.death(of: victim)) }
                throw DemoFailure("the Engine found \(matches.count) copies of the victim's executable in PID \(victim.pid), expected 1")
            }
            let report = patcher.reconcile(matches, desired: desired, known: known)[0]
            if case let .busy(reason) = report.outcome, attempt < Self.attempts {
                console.note("busy (\(reason)); retrying, as the agent would")
                Thread.sleep(forTimeInterval: 0.2 * Double(attempt))
                continue
            }
            console.report(report)
            guard report.outcome == expecting else {
                throw DemoFailure("the Engine reported \"\(report.outcome)\" for PID \(victim.pid), expected \"\(expecting)\"")
            }
            guard report.threadCount == threads + 1 else {
                throw DemoFailure("the Engine stopped \(report.threadCount) threads of PID \(victim.pid), expected \(threads + 1) (\(threads) workers and the main thread)")
            }
            return report
        }
        throw DemoFailure("unreachable: no attempt made")
    }

    /// Reads the victim's lines for one phase, showing a few, and checks that every one shows
    /// `expected`. Only the first may still show `previous`: the main thread may have computed it
    /// just before the stop and printed it just after.
    private func observe(_ victim: RunningProcess, expected: String, previous: String?) throws -> Observation {
        let total = max(2, Int((secondsPerPhase * 1000 / Double(Self.intervalMilliseconds)).rounded()))
        let every = max(1, total / Self.linesShownPerPhase)
        var observation = Observation()
        let started = Date()
        var firstSeen: (calls: UInt64, at: Date)?
        for index in 0..<total {
            let line = try watching(victim) { index == 0 ? try victim.freshLine() : try victim.nextLine() }
            let words = line.split(separator: " ")
            let behaviour = words.prefix(2).joined(separator: " ")
            let calls = words.first { $0.hasPrefix("calls=") }.flatMap { UInt64($0.dropFirst(6)) }
            if behaviour != expected {
                if index == 0, behaviour == previous {
                    observation.staleFirstLine = true
                    console.victimLine(line, note: "computed before the stop")
                    continue
                }
                throw DemoFailure("PID \(victim.pid) printed \"\(line)\", expected \"\(expected)\"")
            }
            observation.lines += 1
            if index % every == 0 || index == total - 1, observation.shown.count < Self.linesShownPerPhase {
                observation.shown.append(line)
                console.victimLine(line, note: nil)
            }
            if let calls {
                if firstSeen == nil { firstSeen = (calls, Date()) ; observation.firstCalls = calls }
                observation.lastCalls = calls
                if let firstSeen, calls > firstSeen.calls {
                    let elapsed = Date().timeIntervalSince(firstSeen.at)
                    if elapsed > 0 { observation.callsPerSecond = Double(calls - firstSeen.calls) / elapsed }
                }
            }
        }
        observation.seconds = Date().timeIntervalSince(started)
        guard observation.lastCalls > observation.firstCalls else {
            throw DemoFailure("the victim's worker threads made no progress during the phase (calls stayed at \(observation.lastCalls))")
        }
        console.verdict(observation, expected: expected)
        return observation
    }

    /// Runs `body`; if it fails because the victim died, says so instead of a pipe error.
    private func watching<T>(_ victim: RunningProcess, _ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            if !victim.isAlive { throw DemoFailure(Self.death(of: victim)) }
            throw DemoFailure("reading the victim (PID \(victim.pid)) failed: \(error)")
        }
    }

    /// How the victim ended, for the failure message.
    static func death(of victim: RunningProcess) -> String {
        guard let status = victim.waitStatus else { return "the victim (PID \(victim.pid)) is gone" }
        let signal = status & 0x7f
        if signal != 0 { return "the victim (PID \(victim.pid)) died of signal \(signal) (\(String(cString: strsignal(signal))))" }
        return "the victim (PID \(victim.pid)) exited with status \((status >> 8) & 0xff)"
    }
}

/// What one phase's output showed.
struct Observation: Codable {
    /// Lines that showed the expected behaviour.
    var lines = 0
    /// The lines shown to the person.
    var shown: [String] = []
    /// The first line still showed the previous behaviour (computed just before the stop).
    var staleFirstLine = false
    /// The workers' call counter at the first and last checked line.
    var firstCalls: UInt64 = 0
    var lastCalls: UInt64 = 0
    /// Calls per second, all worker threads together.
    var callsPerSecond: Double?
    /// How long the phase was watched.
    var seconds: Double = 0
}
