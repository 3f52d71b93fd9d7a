import Engine
import Foundation
import HotpatchFixtures

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

    /// Starts the victim and waits for its first report line.
    static func startVictim(_ arguments: [String] = [], stripped: Bool = false) throws -> RunningProcess {
        let path = stripped ? try builder.strippedVictim() : try builder.victim()
        let process = try RunningProcess(path, ["--interval-ms", "20"] + arguments)
        _ = try process.waitForLine { $0.hasPrefix("ready") }
        return process
    }

    /// Reconciles every copy of `target`'s object in `process` to `desired`, on the tracer thread.
    static func reconcile(_ process: RunningProcess, desired: HotpatchTarget?, known: [HotpatchTarget],
                          patcher: Patcher = Patcher()) throws -> ProcessPatchReport {
        let buildID = (desired ?? known[0]).buildID
        let matches = TargetFinder(cache: patcher.cache).find(buildIDs: [buildID], in: ProcessID(process.pid))
        guard let match = matches.first else { throw HotpatchFixtures.FixtureError.toolFailed("victim \(process.pid) does not map \(buildID)") }
        return try tracer.perform { patcher.reconcile(match, desired: desired, known: known) }
    }

    /// The victim's current behaviour line, e.g. "parse_length(100)=64 banner=2".
    static func behaviour(_ process: RunningProcess) throws -> String {
        let line = try process.freshLine()
        return line.split(separator: " ").prefix(2).joined(separator: " ")
    }
}
