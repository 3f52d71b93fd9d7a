import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

/// The benchmark's ptrace round-trip probe holds a process only while it measures, and gives the
/// tracer thread back the CPUs it had.
extension LivePatchTests {
    /// The CPUs the calling thread may run on, as the kernel lists them ("0-1").
    private static func ownCPUs() -> String {
        let status = (try? String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }.map(String.init) ?? "unreadable"
    }

    @Test(arguments: [RoundTripProbe.Placement.free, .oneCPU])
    func roundTripProbe_measuresEachRoundTrip_thenLetsTheProcessRunUntraced(placement: RoundTripProbe.Placement) throws {
        let looper = try RunningProcess(try Live.builder.build("sleeper.c", flags: ["-O0"]), ["--syscall-loop"])
        defer { looper.stop() }
        let pid = ProcessID(looper.pid)
        let (times, cpusBefore, cpusAfter) = try Live.tracer.perform { () throws -> ([UInt64], String, String) in
            let before = Self.ownCPUs()
            let times = try RoundTripProbe.measure(pid: pid, samples: 200, placement: placement)
            return (times, before, Self.ownCPUs())
        }
        #expect(times.count == 200)
        #expect(times.allSatisfy { $0 < 1_000_000 }, "a round trip beyond the probe's deadline: \(times.max() ?? 0) µs")
        #expect(cpusAfter == cpusBefore, "the tracer thread's CPUs: \(cpusBefore) before, \(cpusAfter) after")
        let status = try ProcFS.status(of: pid)
        #expect(status.tracer == nil, "still traced by \(String(describing: status.tracer))")
        #expect(status.state == "R" || status.state == "S", "state \(status.state)")
    }

    @Test func roundTripProbe_ofAGoneProcess_failsNamingIt() throws {
        let looper = try RunningProcess(try Live.builder.build("sleeper.c", flags: ["-O0"]), ["--syscall-loop"])
        let pid = ProcessID(looper.pid)
        looper.stop()
        let failure = try Live.tracer.perform { () -> EngineError? in
            do throws(EngineError) { _ = try RoundTripProbe.measure(pid: pid, samples: 10, placement: .free) } catch { return error }
            return nil
        }
        let error = try #require(failure, "a probe of a gone process succeeded")
        #expect(error.description.contains("process \(pid)"), "\(error)")
    }
}
