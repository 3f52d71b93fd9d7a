import ArgumentParser
import Engine
import Foundation
import Glibc
import LinuxSystem

/// The machine the figures come from.
struct Machine: Codable {
    var cpus: Int
    var cpuModel: String
    var kernel: String
    var memory: String
    /// /proc/loadavg when the report was made: other work on the machine stretches every pause.
    var loadAverage: String
    /// /proc/loadavg when the run began.
    var loadAverageAtStart: String

    static func loadAverageNow() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").prefix(3).joined(separator: " ")
    }

    static func describe(loadAtStart: String) -> Machine {
        func file(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let model = file("/proc/cpuinfo").split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let memory = file("/proc/meminfo").split(separator: "\n").first { $0.hasPrefix("MemTotal") }?
            .split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        var names = utsname()
        uname(&names)
        let release = withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return Machine(cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), cpuModel: model, kernel: release, memory: memory,
                       loadAverage: loadAverageNow(), loadAverageAtStart: loadAtStart)
    }
}

/// Everything one run measured.
struct BenchReport: Codable {
    var machine: Machine
    var command: String
    var schedFIFO: Bool
    /// The ptrace round trip, the unit a load is built of.
    var roundTrips: RoundTripResult?
    /// The interval of the signals sent to the busy victim (0: none).
    var victimSignalMicroseconds: UInt64
    var victims: [VictimResult]
    var fleets: [FleetResult]
    var agent: AgentBenchResult?
    var goals: [String: Bool]
}

struct HotpatchBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotpatch-bench",
        abstract: "Measures live-patching pauses on busy processes and the time to patch many idle ones (run as root).")

    @Option(help: "ptrace round trips measured per placement (free, one CPU) before the rest (0: skip).")
    var roundTrips = 2000

    @Option(help: "Apply/revert cycles per busy victim (each apply and each revert is one stop).")
    var cycles = 50

    @Option(help: "Fresh victims per thread count whose first apply's load pause is measured (the cycles' victim included).")
    var loadSamples = 5

    @Option(help: "Send the busy victim SIGUSR1 every this many microseconds during its cycles, as a timer would (0: none).")
    var victimSignalUs: UInt64 = 2000

    @Option(help: "Idle sleeper counts to patch at once, comma-separated (empty: skip).")
    var processes = "100,1000"

    @Option(help: "Busy worker-thread counts for the victim, comma-separated (empty: skip).")
    var threads = "1,4,32"

    @Option(help: "HostPatcher tracer threads (default: two per CPU).")
    var workers = HostPatcher.defaultWorkerCount

    @Option(help: "Sleepers per fleet whose output is checked with SIGUSR1 before and after revert.")
    var sample = 10

    @Option(help: "Idle processes the real agent patches when a release lands (0: skip the agent benchmark).")
    var agentProcesses = 100

    @Option(help: "New processes started after the release, each timed from exec to patched by the agent.")
    var agentExecSamples = 20

    @Option(help: "Short-lived runs of the target while the hotpatch is in force, for the exec window (0: skip).")
    var agentShortLived = 40

    @Option(help: "Patched processes around the agent while its idle cost is measured (0: skip that measure).")
    var agentIdleProcesses = 500

    @Option(help: "Seconds the agent's idle CPU is measured over.")
    var agentIdleSeconds = 10.0

    @Option(help: "Bytes of each held thread's stack searched for a saved address inside a patch window (0: no search, to measure its cost).")
    var returnScanBytes = PatchOptions().returnScanBytes

    @Flag(help: "Keep the tracer at normal priority during the stop window (default: SCHED_FIFO).")
    var normalPriority = false

    @Flag(help: "Print the results as JSON instead of tables.")
    var json = false

    @Option(help: "Also write the JSON results to this file.")
    var jsonOutput: String?

    static func list(_ text: String) throws -> [Int] {
        try text.split(separator: ",").map { part in
            guard let value = Int(part.trimmingCharacters(in: .whitespaces)), value > 0 else {
                throw ValidationError("'\(part)' is not a positive number")
            }
            return value
        }
    }

    mutating func validate() throws {
        guard cycles > 0 else { throw ValidationError("--cycles must be positive") }
        guard workers > 0 else { throw ValidationError("--workers must be positive") }
        guard loadSamples > 0 else { throw ValidationError("--load-samples must be positive") }
        guard roundTrips >= 0 else { throw ValidationError("--round-trips must not be negative") }
        guard returnScanBytes >= 0 else { throw ValidationError("--return-scan-bytes must not be negative") }
        _ = try Self.list(processes)
        _ = try Self.list(threads)
    }

    func run() throws {
        guard geteuid() == 0 else { throw BenchFailure("hotpatch-bench must run as root (ptrace, /proc/PID/mem, SCHED_FIFO)") }
        ChildGuard.install()
        let loadAtStart = Machine.loadAverageNow()
        let threadCounts = try Self.list(threads)
        let processCounts = try Self.list(processes)
        try raiseLimits(for: processCounts.max() ?? 0)
        let log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

        var options = PatchOptions()
        options.raiseSchedulingPriority = !normalPriority
        options.returnScanBytes = returnScanBytes
        log("building fixtures…")
        let fixtures = try BenchFixtures()
        var roundTripResult: RoundTripResult?
        if roundTrips > 0 {
            log("ptrace round trips, \(roundTrips) per placement")
            roundTripResult = try RoundTripBench.run(samples: roundTrips, fixtures: fixtures, raisingPriority: !normalPriority)
        }

        var victims: [VictimResult] = []
        for count in threadCounts {
            log("victim with \(count) busy threads, \(cycles) apply/revert cycles")
            victims.append(try VictimBench.run(threads: count, cycles: cycles, loadSamples: loadSamples,
                                               signalIntervalMicroseconds: victimSignalUs, fixtures: fixtures,
                                               options: options, log: log))
        }
        var fleets: [FleetResult] = []
        for count in processCounts {
            log("\(count) idle sleepers, \(workers) workers")
            fleets.append(try FleetBench.run(count: count, workers: workers, sample: sample, fixtures: fixtures,
                                             options: options, log: log))
        }

        var agent: AgentBenchResult?
        if agentProcesses > 0 {
            log("the agent: a release landing with \(agentProcesses) matching processes, then \(agentExecSamples) new ones")
            agent = try AgentBench.run(processes: agentProcesses, execSamples: agentExecSamples, idleProcesses: agentIdleProcesses,
                                       idleSeconds: agentIdleSeconds, shortLivedRuns: agentShortLived, log: log)
        }
        let report = BenchReport(machine: .describe(loadAtStart: loadAtStart), command: CommandLine.arguments.joined(separator: " "),
                                 schedFIFO: !normalPriority, roundTrips: roundTripResult, victimSignalMicroseconds: victimSignalUs, victims: victims, fleets: fleets, agent: agent,
                                 goals: Self.goals(victims: victims, fleets: fleets, agent: agent))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let encoded = try encoder.encode(report)
        if let jsonOutput { try encoded.write(to: URL(fileURLWithPath: jsonOutput)) }
        if json {
            print(String(decoding: encoded, as: UTF8.self))
        } else {
            print(Self.render(report))
        }
        let failed = victims.contains { !$0.unexpectedOutcomes.isEmpty }
        if failed { throw BenchFailure("some stops did not end as expected (see unexpected outcomes)") }
    }

    /// Enough file descriptors (one pipe per sleeper) and processes for the largest fleet.
    private func raiseLimits(for fleet: Int) throws {
        var files = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        files.rlim_cur = files.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        var tasks = rlimit(rlim_cur: UInt.max, rlim_max: UInt.max)
        setrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &tasks)
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        guard files.rlim_cur >= UInt(fleet + 256) else {
            throw BenchFailure("RLIMIT_NOFILE is \(files.rlim_cur), need about \(fleet + 256): raise the hard limit (ulimit -Hn)")
        }
        let pidMax = Int(((try? String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8)) ?? "0")
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let running = (try? ProcFS.processIDs().count) ?? 0
        guard pidMax == 0 || pidMax > running + fleet + 1024 else {
            throw BenchFailure("kernel.pid_max is \(pidMax) with \(running) processes running: too low for \(fleet) more")
        }
    }

    static func goals(victims: [VictimResult], fleets: [FleetResult], agent: AgentBenchResult?) -> [String: Bool] {
        var goals: [String: Bool] = [:]
        if let four = victims.first(where: { $0.busyThreads == 4 }) { goals["median pause <= 100 us at 4 threads"] = four.pause.median <= 100 }
        if let many = victims.first(where: { $0.busyThreads == 32 }) { goals["median pause <= 400 us at 32 threads"] = many.pause.median <= 400 }
        if !victims.isEmpty { goals["p99 pause <= 2 ms"] = victims.allSatisfy { $0.pause.p99 <= 2000 } }
        for victim in victims where [1, 4, 32].contains(victim.busyThreads) && victim.floor.count > 0 {
            goals["median pause <= 1.25x the floor at \(victim.busyThreads) threads"] =
                Double(victim.pause.median) <= 1.25 * Double(victim.floor.median)
        }
        if let thousand = fleets.first(where: { $0.processes == 1000 }) {
            goals["1000 processes patched in <= 0.5 s"] = thousand.apply.totalMicroseconds <= 500_000
            goals["1000 processes patched in <= 150 ms (issue 13)"] = thousand.apply.totalMicroseconds <= 150_000
        }
        if let agent, agent.processes == 100 {
            goals["agent: landing to all 100 processes patched <= 50 ms (issue 13)"] = agent.landingToAllPatchedMicroseconds <= 50_000
        }
        if let idle = agent?.idle {
            goals["agent idle with \(idle.processes) processes: RSS <= 20 MiB (issue 13)"] = idle.residentKiB <= 20 * 1024
            goals["agent idle with \(idle.processes) processes: CPU <= 0.5 % (issue 13)"] = idle.cpuPercent <= 0.5
        }
        if let window = agent?.execWindow {
            goals["exec window: every short-lived process runs the fix from its first call (issue 13)"] =
                window.ranTheFix == window.runs && window.loadsRanTheFix == window.runs
        }
        if let agent, agent.execToPatched.count > 0 { goals["agent: every new process patched <= 100 ms after exec"] = agent.execToPatched.max <= 100_000 }
        return goals
    }

    static func render(_ report: BenchReport) -> String {
        let machine = report.machine
        var out = ["hotpatch-bench: \(machine.cpus) CPUs (\(machine.cpuModel)), kernel \(machine.kernel), \(machine.memory); load average \(machine.loadAverageAtStart) at start, \(machine.loadAverage) at end; stop window at \(report.schedFIFO ? "SCHED_FIFO" : "normal priority")", ""]
        if let trips = report.roundTrips {
            var table = TextTable(header: ["placement", "med", "p99", "min", "max"])
            for (name, times) in [("free (as the agent runs)", trips.free), ("one CPU", trips.oneCPU)] {
                table.rows.append([name, formatMicroseconds(times.median), formatMicroseconds(times.p99), formatMicroseconds(times.min),
                                   formatMicroseconds(times.max)])
            }
            out.append("ptrace round trips, \(trips.samples) each (a held thread resumed to its next system call stop and waited for, as an injected call does twice and a program once; a first apply takes two with the hold when its program runs in spare code, four otherwise; one CPU: tracer and tracee pinned together, no CPU to wake)")
            out.append(table.render())
            out.append("")
        }
        if !report.victims.isEmpty {
            let first = report.victims[0]
            var floors = TextTable(header: ["busy threads", "held", "stops", "pause med", "floor med", "ratio", "pause p99", "floor p99", "ratio",
                                            "pause max", "floor max", "ratio", "load pause med", "ratio", "restopped"])
            for victim in report.victims {
                let pause = victim.pause, floor = victim.floor
                floors.rows.append([String(victim.busyThreads), String(victim.heldThreads), String(pause.count),
                                    formatMicroseconds(pause.median), formatMicroseconds(floor.median), ratio(pause.median, floor.median),
                                    formatMicroseconds(pause.p99), formatMicroseconds(floor.p99), ratio(pause.p99, floor.p99),
                                    formatMicroseconds(pause.max), formatMicroseconds(floor.max), ratio(pause.max, floor.max),
                                    formatMicroseconds(victim.loadPause.median), ratio(victim.loadPause.median, floor.median),
                                    String(victim.pauseSteps.restoppedStops)])
            }
            out.append("Busy victim, \(first.cycles) apply/revert cycles each, SIGUSR1 every \(report.victimSignalMicroseconds == 0 ? "(none)" : formatMicroseconds(report.victimSignalMicroseconds)) (pause: the redirect's stop, every one but the first apply's; floor: every thread seized, stopped and released at the same priority with nothing written, \(first.floor.count) samples, one next to each stop, before it and after it in turn; ratio: pause / floor; restopped: pauses whose stop was first released and taken again, a thread being inside a patch window)")
            out.append(floors.render())
            var table = TextTable(header: ["busy threads", "apply med", "apply p99", "revert med", "load pause med", "load pause max", "1st apply pause",
                                           "1st apply total", "injected/stops", "evacuations", "signals sent/seen", "alive"])
            for victim in report.victims {
                table.rows.append([String(victim.busyThreads),
                                   formatMicroseconds(victim.applyTotal.median), formatMicroseconds(victim.applyTotal.p99),
                                   formatMicroseconds(victim.revertTotal.median),
                                   formatMicroseconds(victim.loadPause.median), formatMicroseconds(victim.loadPause.max),
                                   formatMicroseconds(victim.firstApply.pauseMicroseconds), formatMicroseconds(victim.firstApply.totalMicroseconds),
                                   "\(victim.firstApply.injectedSystemCalls)/\(victim.firstApply.injectionStops)", String(victim.evacuations),
                                   "\(victim.signalsSent)/\(victim.signalsSeen)", victim.aliveAtEnd ? "yes" : "NO"])
            }
            out.append("")
            out.append("(apply: whole operation of applies 2..N; load pause: every thread held while the patch object is mapped, once per process, over \(first.loadPause.count) fresh victims)")
            out.append(table.render())
            var steps = TextTable(header: ["busy threads", "stop", "seize", "all stopped", "check", "verify", "evacuate", "write", "release",
                                           "pause", "earlier stops"])
            for victim in report.victims {
                for (name, part) in [("pause", victim.pauseSteps), ("floor", victim.floorSteps)] {
                    steps.rows.append([String(victim.busyThreads), name, formatMicroseconds(part.seize), formatMicroseconds(part.stop),
                                       formatMicroseconds(part.check), formatMicroseconds(part.verify), formatMicroseconds(part.evacuate),
                                       formatMicroseconds(part.write), formatMicroseconds(part.release), formatMicroseconds(part.pause),
                                       part.restoppedStops == 0 ? "-" : "\(part.restoppedStops) × \(formatMicroseconds(part.earlierStops))"])
                }
            }
            out.append("")
            out.append("Where the pause goes (median of each step's own length; seize: every thread seized and asked to stop, the list read again; all stopped: waiting for the last stop; check: registers against the windows; verify: entries read again; write: written and read back; release: every thread detached; earlier stops: stops released and taken again, median of their summed holds)")
            out.append(steps.render())
            for victim in report.victims where victim.loadsBusy > 0 {
                out.append("  \(victim.busyThreads) threads: \(victim.loadsBusy) fresh victims stayed busy (a thread did not stop in time) for 20 tries; no load pause from them")
            }
            for victim in report.victims where victim.floorsBusy > 0 {
                out.append("  \(victim.busyThreads) threads: \(victim.floorsBusy) floor samples stayed busy (a thread did not stop in time)")
            }
            for victim in report.victims where !victim.unexpectedOutcomes.isEmpty {
                out.append("  \(victim.busyThreads) threads, unexpected: \(victim.unexpectedOutcomes.prefix(5).joined(separator: "; "))")
            }
            out.append("")
        }
        if !report.fleets.isEmpty {
            var table = TextTable(header: ["processes", "pass", "scan alone", "scan+patch", "cpu", "per-process med", "p99",
                                           "pause med", "pause max", "load pause med", "load pause max", "injected/stops", "outcomes"])
            for fleet in report.fleets {
                for (name, pass) in [("apply", fleet.apply), ("revert", fleet.revert)] {
                    table.rows.append([String(fleet.processes), name, formatMicroseconds(pass.scanMicroseconds),
                                       formatMicroseconds(pass.totalMicroseconds), formatMicroseconds(pass.cpuMicroseconds),
                                       formatMicroseconds(pass.perProcessTotal.median), formatMicroseconds(pass.perProcessTotal.p99),
                                       formatMicroseconds(pass.pause.median), formatMicroseconds(pass.pause.max),
                                       pass.loadPause.count == 0 ? "-" : formatMicroseconds(pass.loadPause.median),
                                       pass.loadPause.count == 0 ? "-" : formatMicroseconds(pass.loadPause.max), "\(pass.injectedSystemCalls)/\(pass.injectionStops)",
                                       pass.outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")])
                }
                for (name, floor) in zip(["floor before", "floor after"], fleet.floors) {
                    table.rows.append([String(fleet.processes), name, "-", formatMicroseconds(floor.totalMicroseconds),
                                       formatMicroseconds(floor.cpuMicroseconds),
                                       formatMicroseconds(floor.perProcess.median), formatMicroseconds(floor.perProcess.p99),
                                       formatMicroseconds(floor.perProcess.median), formatMicroseconds(floor.perProcess.max),
                                       "-", "-", "0", floor.busy == 0 ? "stopped \(floor.perProcess.count)" : "stopped \(floor.perProcess.count), busy \(floor.busy)"])
                }
            }
            let workers = report.fleets[0].workers
            out.append("Idle single-threaded sleepers, \(workers) tracer workers (scan+patch: the agent's pass over all \(report.fleets.last!.apply.hostProcesses) host processes, each worker finding and patching one process after another; cpu: the CPU time this process used during the pass, all threads, user and kernel; scan alone: the matches over the same processes on one thread, measured after it)")
            out.append(table.render())
            out.append("  floor: every sleeper's threads stopped and let go on the same workers and priority as a patch, nothing read but its identity, nothing written; measured before the apply and after the revert")
            for fleet in report.fleets where fleet.floorMicroseconds > 0 {
                let floor = Double(fleet.floorMicroseconds)
                out.append("  \(fleet.processes): apply \(String(format: "%.2f", Double(fleet.apply.totalMicroseconds) / floor))×, revert \(String(format: "%.2f", Double(fleet.revert.totalMicroseconds) / floor))× the floor (\(formatMicroseconds(fleet.floorMicroseconds)), the mean of the two)")
            }
            for fleet in report.fleets {
                out.append("  \(fleet.processes): started in \(formatMicroseconds(fleet.startMicroseconds)); all \(fleet.aliveAfterRevert) alive, free and untraced after revert; \(fleet.sampleChecked) sampled printed 64 patched and 100 reverted")
            }
            out.append("")
        }
        if let agent = report.agent {
            out.append("The agent (real hotpatch-agent, process watch: \(agent.processWatch))")
            out.append("  release landing → all \(agent.processes) matching processes patched: \(formatMicroseconds(agent.landingToAllPatchedMicroseconds)) (publishing it took \(formatMicroseconds(agent.publishMicroseconds)))")
            let exec = agent.execToPatched
            out.append("  exec → patched, \(exec.count) new processes: median \(formatMicroseconds(exec.median)), min \(formatMicroseconds(exec.min)), max \(formatMicroseconds(exec.max))")
            if let idle = agent.idle {
                out.append("  idle with \(idle.processes) patched processes: CPU \(String(format: "%.2f", idle.cpuPercent)) % of one CPU over \(String(format: "%.1f", idle.seconds)) s (\(idle.hostForks) forks on the host meanwhile: the process watch hears of each); RSS \(idle.residentKiB / 1024) MiB (anonymous \(idle.anonymousKiB / 1024) MiB, file-backed \(idle.fileKiB / 1024) MiB)")
            }
            if let window = agent.execWindow {
                out.append("  exec window: \(window.ranTheFix)/\(window.runs) short-lived processes ran the fix, and \(window.loadsRanTheFix)/\(window.runs) "
                           + "that dlopen the targeted library first (exec gate: \(window.gate); \(window.gateCounts)); spawn to exit, median (p99), "
                           + "before the release → with the hotpatch in force:")
                func pair(_ label: String, _ before: Distribution, _ gated: Distribution) -> String {
                    "    \(label): \(formatMicroseconds(before.median)) (\(formatMicroseconds(before.p99))) → \(formatMicroseconds(gated.median)) (\(formatMicroseconds(gated.p99))), added \(formatSignedMicroseconds(Int64(gated.median) - Int64(before.median))) at the median"
                }
                out.append(pair("exec of the target (calls the patched function, exits)", window.targetBefore, window.targetGated))
                out.append(pair("dlopen of the targeted library (a loader calls it once, exits)", window.loadBefore, window.loadGated))
                out.append(pair("open of the target (cat reads it)", window.readBefore, window.readGated))
                out.append(pair("any other exec (/bin/true)", window.otherBefore, window.otherGated))
            }
            out.append("")
        }
        out.append("Goals:")
        for (goal, met) in report.goals.sorted(by: { $0.key < $1.key }) { out.append("  [\(met ? "met" : "MISSED")] \(goal)") }
        return out.joined(separator: "\n")
    }
}

/// `value` / `base` as "1.42×"; "-" without a base.
func ratio(_ value: UInt64, _ base: UInt64) -> String {
    base == 0 ? "-" : String(format1: Double(value) / Double(base), digits: 2) + "×"
}
