import Engine
import Foundation
import Glibc
import LinuxSystem

/// The exec window (issue 13 §1): whether short-lived processes started while a hotpatch is in
/// force run the fix from their first call, and what the exec gate adds to an exec or open of a
/// targeted file, and to any other exec. Each figure is spawn to exit of a program that calls the
/// patched function once and exits (the target), of a loader that `dlopen`s a targeted library
/// and calls its patched function once, of `cat` reading the target, and of `/bin/true`.
struct ExecWindowResult: Codable {
    /// Short-lived runs of the target while the hotpatch was in force, and how many printed the fix.
    var runs: Int
    var ranTheFix: Int
    /// Of as many runs of the loader, how many printed the library's fix.
    var loadsRanTheFix: Int
    /// The agent's exec gate ("fanotify" or "off").
    var gate: String
    /// Its counts after the runs (status `execGate`): patched at start, let go, not held, and why the last was let go.
    var gateCounts: String
    /// Spawn to exit before the release landed (no mark anywhere), and with the hotpatch in force.
    var targetBefore: Distribution
    var targetGated: Distribution
    var loadBefore: Distribution
    var loadGated: Distribution
    var readBefore: Distribution
    var readGated: Distribution
    var otherBefore: Distribution
    var otherGated: Distribution
}

/// One side of the measurement: `samples` runs of each program, interleaved.
struct ExecTimings {
    var target: [UInt64] = []
    var load: [UInt64] = []
    var read: [UInt64] = []
    var other: [UInt64] = []
    /// What each run of the target, and of the loader, printed first.
    var targetLines: [String] = []
    var loadLines: [String] = []

    /// Runs the target (`program --once`), `loader library`, `cat program` and `/bin/true`,
    /// `samples` times each.
    static func measure(program: String, loader: String, library: String, samples: Int) throws -> ExecTimings {
        var timings = ExecTimings()
        func firstLine(_ output: String) -> String { output.split(separator: "\n").first.map(String.init) ?? "" }
        for _ in 0..<samples {
            let (targetTime, output) = try timed(program, ["--once"])
            timings.target.append(targetTime)
            timings.targetLines.append(firstLine(output))
            let (loadTime, loaded) = try timed(loader, [library])
            timings.load.append(loadTime)
            timings.loadLines.append(firstLine(loaded))
            timings.read.append(try timed("/bin/cat", [program]).microseconds)
            timings.other.append(try timed("/bin/true", []).microseconds)
        }
        return timings
    }

    /// Spawn to exit of `path arguments`, and its output.
    private static func timed(_ path: String, _ arguments: [String]) throws -> (microseconds: UInt64, output: String) {
        let start = Monotonic.now
        let finished: ChildProcess.Finished
        do { finished = try ChildProcess.run(path, arguments, timeoutSeconds: 10) } catch { throw BenchFailure("\(path): \(error)") }
        let elapsed = Monotonic.now.microseconds(since: start)
        guard finished.status == 0 else { throw BenchFailure("\(path) \(arguments.joined(separator: " ")) exited \(finished.status)") }
        return (elapsed, String(decoding: finished.output, as: UTF8.self))
    }
}
