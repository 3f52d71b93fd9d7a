import Artifact
import Engine
import Foundation
import HotpatchFixtures
import LinuxSystem
import Testing

/// All tests that patch live processes: one serialized suite, so busy victims do not compete for
/// the two CPUs and stretch each other's stop windows.
@Suite(.serialized) struct LivePatchTests {}

/// Shared pieces of the live-patching tests: fixtures built once, one tracer thread.
enum Live {
    static let builder = FixtureBuilder()
    static let tracer = TracerThread(name: "test-tracer")
    nonisolated(unsafe) static var cachedHotpatches: VictimHotpatches?

    static func victimHotpatches() throws -> VictimHotpatches {
        if let cached = cachedHotpatches { return cached }
        let made = try VictimHotpatches(builder: builder, victimPath: builder.victim())
        cachedHotpatches = made
        return made
    }

    /// Starts the victim (or `launcher` + victim) and waits for its first report line.
    static func startVictim(_ arguments: [String] = [], stripped: Bool = false, launcher: [String] = []) throws -> RunningProcess {
        let path = stripped ? try builder.strippedVictim() : try builder.victim()
        let command = launcher + [path, "--interval-ms", "20"] + arguments
        let process = try RunningProcess(command[0], Array(command.dropFirst()))
        _ = try process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        return process
    }

    /// The process's match for `buildID`.
    static func match(_ pid: Int32, _ buildID: BuildID, cache: ObjectCache = ObjectCache()) throws -> TargetMatch {
        let matches = TargetFinder(cache: cache).find(buildIDs: [buildID], in: ProcessID(pid))
        guard let match = matches.first else {
            throw FixtureError.setUp("process \(pid) does not map \(buildID)")
        }
        return match
    }

    /// Reconciles `process` to `desired`, on the tracer thread; retries `busy` a few times as the
    /// agent would.
    static func reconcile(_ process: RunningProcess, desired: HotpatchTarget?, known: [HotpatchTarget],
                          patcher: Patcher = Patcher(), retries: Int = 20) throws -> ProcessPatchReport {
        let match = try match(process.pid, (desired ?? known[0]).buildID, cache: patcher.cache)
        var report = try tracer.perform { patcher.reconcile(match, desired: desired, known: known) }
        var attempts = 0
        while case .busy = report.outcome, attempts < retries {
            attempts += 1
            Thread.sleep(forTimeInterval: 0.01)
            report = try tracer.perform { patcher.reconcile(match, desired: desired, known: known) }
        }
        return report
    }

    /// The victim's current behaviour line, e.g. "parse_length(100)=64 banner=2".
    static func behaviour(_ process: RunningProcess) throws -> String {
        // The first fresh line may have been computed just before a patch; the second was not.
        _ = try process.freshLine()
        let line = try process.nextLine()
        return line.split(separator: " ").prefix(2).joined(separator: " ")
    }

    /// The mapping lines of a process that mention `text`.
    static func mapsLines(_ pid: Int32, containing text: String) -> [String] {
        let maps = (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? ""
        return maps.split(separator: "\n").map(String.init).filter { $0.contains(text) }
    }

    static let original = "parse_length(100)=100 banner=1"
    static let level1 = "parse_length(100)=64 banner=2"
    static let level2 = "parse_length(100)=32 banner=1"
}
