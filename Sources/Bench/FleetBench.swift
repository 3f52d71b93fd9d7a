import Artifact
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem

/// One pass (apply or revert) over every idle process.
struct FleetPass: Codable {
    /// Wall time of `HostPatcher.matches` alone (one thread) over every process on the host, measured right
    /// after the pass (what the scan costs; the pass itself scans on the workers).
    var scanMicroseconds: UInt64
    /// Wall time of the pass the agent makes, `HostPatcher.reconcile(among:…excluding:)` over every
    /// process on the host: the workers scan, then patch.
    var patchMicroseconds: UInt64
    /// The pass's wall time (the same as `patchMicroseconds`: the scan is inside it).
    var totalMicroseconds: UInt64
    /// CPU time the benchmark's process (the workers, and the kernel on their behalf) used during
    /// the pass: the work itself, steadier than wall time on a busy machine.
    var cpuMicroseconds: UInt64
    /// Processes on the host when scanned, and how many matched.
    var hostProcesses: Int
    var matched: Int
    /// Outcome → count.
    var outcomes: [String: Int]
    /// Per-process figures from the reports: the redirect's stop, the load's hold (apply only).
    var pause: Distribution
    var loadPause: Distribution
    var perProcessTotal: Distribution
    var injectedSystemCalls: Int
    /// How many times injection threads stopped for those calls (round trips to the agent).
    var injectionStops: Int
}

/// The floor of a pass over the same idle processes: each one's threads stopped and let go on the
/// same workers and priority as a patch, nothing read but its identity, nothing written.
struct FleetFloor: Codable {
    /// Wall time of the whole floor pass.
    var totalMicroseconds: UInt64
    /// CPU time the benchmark's process used during it (as `FleetPass.cpuMicroseconds`).
    var cpuMicroseconds: UInt64
    /// Per process, first stop to release.
    var perProcess: Distribution
    /// Processes whose threads did not all stop in time.
    var busy: Int
}

/// Patching many idle single-threaded processes at once.
struct FleetResult: Codable {
    var processes: Int
    var workers: Int
    var startMicroseconds: UInt64
    var apply: FleetPass
    var revert: FleetPass
    /// The floor measured right before the apply and right after the revert.
    var floors: [FleetFloor]
    /// The mean of the floors' wall times: what the passes are compared with.
    var floorMicroseconds: UInt64 { floors.isEmpty ? 0 : floors.map(\.totalMicroseconds).reduce(0, +) / UInt64(floors.count) }
    /// Sampled processes that printed the patched value after apply and the original after revert.
    var sampleChecked: Int
    var aliveAfterRevert: Int
}

enum FleetBench {
    static func run(count: Int, workers: Int, sample: Int, fixtures: BenchFixtures, options: PatchOptions,
                    log: (String) -> Void) throws -> FleetResult {
        let hotpatch = fixtures.sleeperHotpatch
        let started = Monotonic.now
        var children: [BenchChild] = []
        defer { children.forEach { $0.stop() } }
        children.reserveCapacity(count)
        for _ in 0..<count { children.append(try BenchChild(fixtures.sleeperPath)) }
        // Ready means the SIGUSR1 handler is installed (so a sampled signal does not kill it) and
        // the process sleeps in pause().
        let readyBy = Date().addingTimeInterval(60)
        for child in children {
            while true {
                if let condition = ProcessCondition.read(child.pid), condition.catchesSIGUSR1, condition.state == "S" { break }
                guard Date() < readyBy else { throw BenchFailure("sleeper \(child.pid) not ready within 60 s") }
                usleep(1000)
            }
        }
        let startMicroseconds = Monotonic.now.microseconds(since: started)
        log("  \(count) sleepers started and idle in \(formatMicroseconds(startMicroseconds))")
        let ours = Set(children.map(\.pid))
        let sampled = stride(from: 0, to: count, by: max(1, count / max(1, sample))).prefix(sample).map { children[$0] }

        let host = HostPatcher(workers: workers, options: options)
        var floors = [try floor(host: host, children: children)]
        log("  \(count) sleepers stopped and released (floor): \(formatMicroseconds(floors[0].totalMicroseconds))")
        let apply = try pass(host: host, hotpatch: hotpatch, desired: hotpatch, ours: ours, expected: "applied")
        log("  \(count) sleepers: scan \(formatMicroseconds(apply.scanMicroseconds)), patch \(formatMicroseconds(apply.patchMicroseconds))")
        var checked = 0
        for child in sampled {
            try ask(child, expect: "parse_length(100)=64", when: "after apply")
        }
        let revert = try pass(host: host, hotpatch: hotpatch, desired: nil, ours: ours, expected: "reverted")
        log("  \(count) sleepers reverted: scan \(formatMicroseconds(revert.scanMicroseconds)), patch \(formatMicroseconds(revert.patchMicroseconds))")
        for child in sampled {
            try ask(child, expect: "parse_length(100)=100", when: "after revert")
            checked += 1
        }
        floors.append(try floor(host: host, children: children))
        log("  \(count) sleepers stopped and released (floor): \(formatMicroseconds(floors[1].totalMicroseconds))")
        var alive = 0
        var problems: [String] = []
        for child in children {
            if let condition = ProcessCondition.read(child.pid), condition.isHealthyAndFree, child.process.isAlive {
                alive += 1
            } else {
                problems.append("\(child.pid)")
            }
        }
        guard problems.isEmpty else {
            throw BenchFailure("\(problems.count) of \(count) sleepers died or were left stopped/traced: \(problems.prefix(20).joined(separator: ", "))")
        }
        let good = [apply.outcomes["applied"] ?? 0, revert.outcomes["reverted"] ?? 0]
        guard good == [count, count] else {
            throw BenchFailure("not every sleeper was patched and reverted: apply \(apply.outcomes), revert \(revert.outcomes)")
        }
        return FleetResult(processes: count, workers: workers, startMicroseconds: startMicroseconds, apply: apply,
                           revert: revert, floors: floors, sampleChecked: checked, aliveAfterRevert: alive)
    }

    /// One floor pass over `children` on `host`'s workers.
    private static func floor(host: HostPatcher, children: [BenchChild]) throws -> FleetFloor {
        let identities = try children.map { child in
            do { return try ProcFS.identity(of: ProcessID(child.pid)) } catch {
                throw BenchFailure("sleeper \(child.pid) before the floor pass: \(error)")
            }
        }
        let started = Monotonic.now
        let cpu0 = processCPUMicroseconds()
        let results = host.stopFloors(of: identities)
        let cpu = processCPUMicroseconds() - cpu0
        let total = Monotonic.now.microseconds(since: started)
        var times: [UInt64] = []
        var busy = 0
        for (child, result) in zip(children, results) {
            switch result {
            case let .success(stop): times.append(stop.released)
            case let .failure(refusal):
                guard case .busy = refusal.outcome else { throw BenchFailure("floor on sleeper \(child.pid): \(refusal.outcome)") }
                busy += 1
            }
        }
        return FleetFloor(totalMicroseconds: total, cpuMicroseconds: cpu, perProcess: Distribution(times), busy: busy)
    }

    private static func ask(_ child: BenchChild, expect wanted: String, when: String) throws {
        child.process.signal(SIGUSR1)
        let line: String
        do { line = try child.process.nextLine(timeout: 5) } catch {
            throw BenchFailure("sleeper \(child.pid) \(when): \(error)")
        }
        guard line == wanted else { throw BenchFailure("sleeper \(child.pid) \(when) printed '\(line)', expected '\(wanted)'") }
    }

    private static func pass(host: HostPatcher, hotpatch: Hotpatch, desired: Hotpatch?, ours: Set<Int32>,
                             expected: String) throws -> FleetPass {
        let hostProcesses = (try? ProcFS.processIDs().count) ?? 0
        let t0 = Monotonic.now
        let cpu0 = processCPUMicroseconds()
        let hostReports = host.reconcile(desired: .cumulative(desired: desired, levels: [hotpatch]), known: [hotpatch],
                                         excluding: ExclusionPolicy())
        let cpu = processCPUMicroseconds() - cpu0
        let t1 = Monotonic.now
        _ = host.matches(for: [hotpatch])
        let t2 = Monotonic.now
        let matches = hostReports.map(\.match)
        let reports = try hostReports.map { report -> ProcessPatchReport in
            guard case let .reconciled(patch) = report.result else {
                throw BenchFailure("PID \(report.match.process.pid) excluded: \(report.result)")
            }
            return patch
        }
        let matchedOurs = Set(matches.map(\.process.pid.rawValue)).intersection(ours)
        guard matchedOurs.count == ours.count else {
            throw BenchFailure("the scan found \(matchedOurs.count) of our \(ours.count) sleepers")
        }
        var outcomes: [String: Int] = [:]
        for report in reports {
            let key: String
            switch report.outcome {
            case .applied: key = "applied"
            case .alreadyApplied: key = "already applied"
            case .reverted: key = "reverted"
            case .notApplied: key = "not applied"
            case let .busy(reason): key = "busy: \(reason)"
            case let .unpatchable(reason): key = "unpatchable: \(reason)"
            }
            outcomes[key, default: 0] += 1
        }
        return FleetPass(
            scanMicroseconds: t2.microseconds(since: t1), patchMicroseconds: t1.microseconds(since: t0),
            totalMicroseconds: t1.microseconds(since: t0), cpuMicroseconds: cpu, hostProcesses: hostProcesses, matched: matches.count,
            outcomes: outcomes, pause: Distribution(reports.compactMap(\.pauseMicroseconds)),
            loadPause: Distribution(reports.compactMap(\.loadPauseMicroseconds)),
            perProcessTotal: Distribution(reports.map(\.totalMicroseconds)),
            injectedSystemCalls: reports.map(\.injectedSystemCalls).reduce(0, +),
            injectionStops: reports.map(\.injectionStops).reduce(0, +))
    }

    /// CPU time used so far by this process, all its threads, user and system.
    private static func processCPUMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}
