import Engine
import Glibc
import LinuxSystem

/// The ptrace round trip on this machine (`RoundTripProbe`): where the scheduler puts the tracer
/// and its tracee, as the agent runs, and with both on one CPU. A first apply takes four round
/// trips, so on a machine where they are slow the first apply's figure is mostly waiting.
struct RoundTripResult: Codable {
    /// Round trips measured per placement (after as many again not counted, to warm up).
    var samples: Int
    /// Tracer and tracee wherever the scheduler puts them.
    var free: Distribution
    /// Both pinned to one CPU.
    var oneCPU: Distribution
}

enum RoundTripBench {
    /// Probes a fresh `--syscall-loop` sleeper per placement, the tracer at the stop window's
    /// priority when `raisingPriority`. Run it before any other child of this thread exists: the
    /// probe's waits take events of any child of the calling thread.
    static func run(samples: Int, fixtures: BenchFixtures, raisingPriority: Bool) throws -> RoundTripResult {
        func probe(_ placement: RoundTripProbe.Placement) throws -> Distribution {
            let child = try BenchChild(fixtures.sleeperPath, ["--syscall-loop"])
            defer { child.stop() }
            let raised = raisingPriority ? SchedulingPriority.raise() : nil
            defer { raised?.restore() }
            let times: [UInt64]
            do { times = try RoundTripProbe.measure(pid: ProcessID(child.pid), samples: 2 * samples, placement: placement) } catch {
                throw BenchFailure("the ptrace round-trip probe (\(placement.rawValue)) failed: \(error)")
            }
            return Distribution(Array(times.suffix(samples)))
        }
        return RoundTripResult(samples: samples, free: try probe(.free), oneCPU: try probe(.oneCPU))
    }
}
