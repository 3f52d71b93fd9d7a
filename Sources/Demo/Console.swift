import Artifact
import Engine
import Foundation
import LinuxSystem

/// Everything the demo prints. Human output goes straight to the file descriptor (no buffering,
/// so the victim's lines appear as they arrive even through a pipe); with `--json` nothing is
/// printed until the one JSON document at the end.
struct Console {
    let json: Bool

    private static let labelWidth = 10

    func introduction(pid: Int32, threads: Int, fixtures: String, interval: Int, levels: [Hotpatch]) {
        say("hotpatch-demo: patch a running process in memory, without restarting it")
        say("")
        field("victim", "PID \(pid): \(threads) busy threads calling parse_length() and banner_version(),")
        field("", "main thread printing what they return every \(interval) ms")
        field("level 1", "\(levels[0].id): parse_length clamps to 64, banner_version returns 2")
        field("level 2", "\(levels[1].id): parse_length clamps to 32 (through libc and a static helper),")
        field("", "banner change dropped (cumulative levels: 2 replaces 1)")
        field("fixtures", "compiled with cc into \(fixtures)")
    }

    func phase(_ title: String) {
        say("")
        say(title)
    }

    func note(_ text: String) { field("", text) }

    func report(_ report: ProcessPatchReport) {
        field("outcome", "\(report.outcome)")
        if let pause = report.pauseMicroseconds {
            field("pause", "\(pause) µs: \(report.threadCount) threads stopped, \(report.evacuatedThreads) moved out of the patched bytes")
        }
        let total = "\(Self.milliseconds(report.totalMicroseconds)) ms in all"
        switch report.outcome {
        case .applied, .alreadyApplied, .reverted, .notApplied:
            let loading = report.injectedSystemCalls == 0
                ? "no system call injected (nothing to map)"
                : "\(report.injectedSystemCalls) system calls injected to map the patch object"
            field("work", "\(loading); \(total)")
        case .busy, .unpatchable:
            field("work", total)
        }
    }

    func victimLine(_ line: String, note: String?) {
        say("  | " + line + (note.map { "   (\($0))" } ?? ""))
    }

    func verdict(_ observation: Observation, expected: String) {
        let rate = observation.callsPerSecond.map { String(format: ", %.1f M calls/s", $0 / 1e6) } ?? ""
        field("checked", "\(observation.lines) lines in \(String(format: "%.1f", observation.seconds)) s, every one \(expected)\(rate)")
    }

    func survived(pid: Int32, calls: UInt64) {
        field("victim", "PID \(pid) still running, the same process since the start (never restarted)")
        field("", "its workers made \(Self.grouped(calls)) calls meanwhile, none returning an impossible value")
    }

    func stopped(pid: Int32) { field("stopped", "PID \(pid)") }

    /// The closing line (human) or the whole record (JSON).
    func finish(_ record: DemoRecord) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            if let data = try? encoder.encode(record) { write(data + Data("\n".utf8), to: .standardOutput) }
            if let error = record.error { write(Data("hotpatch-demo: FAILED: \(error)\n".utf8), to: .standardError) }
            return
        }
        say("")
        if record.ok {
            let pauses = record.phases.compactMap { $0.report?.pauseMicroseconds }.map { "\($0) µs" }
            say("OK: 3 live changes to PID \(record.pid ?? 0) (\(record.threads + 1) threads); pauses \(pauses.joined(separator: ", ")).")
        } else {
            write(Data("hotpatch-demo: FAILED: \(record.error ?? "unknown")\n".utf8), to: .standardError)
        }
    }

    /// The demo cannot start at all.
    func refuse(_ text: String) {
        write(Data("hotpatch-demo: \(text)\n".utf8), to: .standardError)
    }

    private func field(_ label: String, _ value: String) {
        say("  " + label.padding(toLength: Self.labelWidth, withPad: " ", startingAt: 0) + value)
    }

    private func say(_ text: String) {
        guard !json else { return }
        write(Data((text + "\n").utf8), to: .standardOutput)
    }

    private func write(_ data: Data, to handle: FileHandle) { handle.write(data) }

    /// 637844917 as "637,844,917".
    private static func grouped(_ value: UInt64) -> String {
        var digits = Array(String(value))
        var index = digits.count - 3
        while index > 0 {
            digits.insert(",", at: index)
            index -= 3
        }
        return String(digits)
    }

    private static func milliseconds(_ microseconds: UInt64) -> String {
        String(format: "%.1f", Double(microseconds) / 1000)
    }
}

/// The whole run, as `--json` prints it.
struct DemoRecord: Codable {
    var ok = false
    var error: String?
    var pid: Int32?
    var threads: Int
    var secondsPerPhase: Double
    var phases: [PhaseRecord] = []
    /// The victim was the same process (pid and start time) at the end as at the start.
    var sameProcess = false

    init(threads: Int, secondsPerPhase: Double) {
        self.threads = threads
        self.secondsPerPhase = secondsPerPhase
    }
}

/// One phase: the change made (none for the first) and what the output showed after it.
struct PhaseRecord: Codable {
    var title: String
    var expected: String
    var report: ReportRecord?
    var observation: Observation
}

/// The Engine's report for the victim, in plain fields.
struct ReportRecord: Codable {
    var outcome: String
    var pauseMicroseconds: UInt64?
    var totalMicroseconds: UInt64
    var threadCount: Int
    var evacuatedThreads: Int
    var injectedSystemCalls: Int
    var objectPath: String

    init(_ report: ProcessPatchReport) {
        outcome = "\(report.outcome)"
        pauseMicroseconds = report.pauseMicroseconds
        totalMicroseconds = report.totalMicroseconds
        threadCount = report.threadCount
        evacuatedThreads = report.evacuatedThreads
        injectedSystemCalls = report.injectedSystemCalls
        objectPath = report.objectPath
    }
}
