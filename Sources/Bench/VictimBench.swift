import Engine
import Foundation
import Glibc
import HotpatchFixtures

/// The first apply of a run: it maps the patch object into the process (injected system calls).
struct FirstApply: Codable {
    var pauseMicroseconds: UInt64
    var totalMicroseconds: UInt64
    var injectedSystemCalls: Int
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
    /// Whole operation (first look to last detach) of the applies after the first.
    var applyTotal: Distribution
    var revertTotal: Distribution
    var firstApply: FirstApply
    /// Threads single-stepped out of a patch window, over all stops.
    var evacuations: Int
    /// Stops whose outcome was not applied/reverted as expected (busy, unpatchable, …).
    var unexpectedOutcomes: [String]
    /// Output checks (patched value after each apply, original after each revert) that passed.
    var behaviourChecks: Int
    var aliveAtEnd: Bool
}

enum VictimBench {
    /// Runs `cycles` apply/revert cycles on a victim with `threads` busy threads.
    static func run(threads: Int, cycles: Int, fixtures: BenchFixtures, options: PatchOptions,
                    log: (String) -> Void) throws -> VictimResult {
        let target = fixtures.victim.level1.targets[0]
        let victim = try BenchChild(fixtures.victimPath, ["--threads", String(threads), "--interval-ms", "10"])
        defer { victim.stop() }
        _ = try victim.process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        let tracer = TracerThread(name: "bench-tracer")
        defer { tracer.shutdown() }
        let patcher = Patcher(options: options)
        guard let match = TargetFinder(cache: patcher.cache).find(buildIDs: [target.buildID], in: ProcessID(victim.pid)).first else {
            throw BenchFailure("victim \(victim.pid) does not map \(target.buildID)")
        }

        func behaviour() throws -> String {
            // The second line after draining: the first may have been computed before the stop.
            _ = try victim.process.freshLine(timeout: 5)
            let line = try victim.process.nextLine(timeout: 5)
            return line.split(separator: " ").prefix(2).joined(separator: " ")
        }
        func expect(_ wanted: String, after what: String) throws {
            let seen: String
            do { seen = try behaviour() } catch {
                throw BenchFailure("victim (\(threads) threads) after \(what): \(error); wait status \(victim.process.isAlive ? "running" : String(victim.process.waitStatus ?? -1))")
            }
            guard seen == wanted else { throw BenchFailure("victim (\(threads) threads) after \(what) prints '\(seen)', expected '\(wanted)'") }
        }
        try expect("parse_length(100)=100 banner=1", after: "start")

        var applies: [ProcessPatchReport] = []
        var reverts: [ProcessPatchReport] = []
        var unexpected: [String] = []
        var checks = 0
        for cycle in 0..<cycles {
            let applied = try tracer.perform { patcher.reconcile(match, desired: target, known: [target]) }
            applies.append(applied)
            if applied.outcome == .applied {
                try expect("parse_length(100)=64 banner=2", after: "apply \(cycle + 1)")
                checks += 1
            } else {
                unexpected.append("apply \(cycle + 1): \(applied.outcome)")
            }
            let reverted = try tracer.perform { patcher.reconcile(match, desired: nil, known: [target]) }
            reverts.append(reverted)
            if reverted.outcome == .reverted {
                try expect("parse_length(100)=100 banner=1", after: "revert \(cycle + 1)")
                checks += 1
            } else {
                unexpected.append("revert \(cycle + 1): \(reverted.outcome)")
            }
            if (cycle + 1) % 10 == 0 { log("  \(threads) threads: \(cycle + 1)/\(cycles) cycles") }
        }
        let alive = victim.process.isAlive
        guard alive else {
            throw BenchFailure("victim with \(threads) threads DIED during the benchmark (wait status \(victim.process.waitStatus ?? -1))")
        }
        guard let condition = ProcessCondition.read(victim.pid), condition.isHealthyAndFree else {
            throw BenchFailure("victim with \(threads) threads is left stopped or traced after the benchmark")
        }

        let first = applies[0]
        let laterApplies = applies.dropFirst().filter { $0.outcome == .applied }
        let goodReverts = reverts.filter { $0.outcome == .reverted }
        let stops = (laterApplies + goodReverts).compactMap(\.pauseMicroseconds)
        return VictimResult(
            busyThreads: threads, heldThreads: first.threadCount, cycles: cycles,
            pause: Distribution(stops),
            applyPause: Distribution(laterApplies.compactMap(\.pauseMicroseconds)),
            revertPause: Distribution(goodReverts.compactMap(\.pauseMicroseconds)),
            applyTotal: Distribution(laterApplies.map(\.totalMicroseconds)),
            revertTotal: Distribution(goodReverts.map(\.totalMicroseconds)),
            firstApply: FirstApply(pauseMicroseconds: first.pauseMicroseconds ?? 0, totalMicroseconds: first.totalMicroseconds,
                                   injectedSystemCalls: first.injectedSystemCalls),
            evacuations: (applies + reverts).map(\.evacuatedThreads).reduce(0, +),
            unexpectedOutcomes: unexpected, behaviourChecks: checks, aliveAtEnd: alive)
    }
}
