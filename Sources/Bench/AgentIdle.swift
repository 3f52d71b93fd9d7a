import Foundation
import Glibc

/// What an idle agent costs the host: its resident memory and its share of one CPU while nothing
/// changes (no release lands, no matching process starts; the host's other processes go on).
struct AgentIdleCost: Codable {
    /// Processes mapping the target, all patched, while measuring.
    var processes: Int
    /// How long the CPU was measured, in seconds.
    var seconds: Double
    /// CPU time (user + system, all threads) over `seconds`, as a percentage of one CPU.
    var cpuPercent: Double
    /// VmRSS at the end, in KiB: anonymous, file-backed (code and read-only data of the binary
    /// and its libraries, shared with other processes) and shared memory together.
    var residentKiB: Int
    /// RssAnon at the end, in KiB: the agent's own heap and stacks.
    var anonymousKiB: Int
    /// RssFile at the end, in KiB.
    var fileKiB: Int
    /// Execs on the whole host while measuring (from /proc/stat's `processes`): the process watch
    /// hears of each, so a host that forks a lot costs the agent more.
    var hostForks: Int

    /// Measures the agent `pid` for `seconds` with `processes` patched processes around it.
    static func measure(pid: Int32, processes: Int, seconds: Double) throws -> AgentIdleCost {
        guard let before = cpuTicks(pid), let forksBefore = hostForkCount() else { throw BenchFailure("the agent \(pid) is gone") }
        let start = Date()
        Thread.sleep(forTimeInterval: seconds)
        let lasted = Date().timeIntervalSince(start)
        guard let after = cpuTicks(pid), let forksAfter = hostForkCount(),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else {
            throw BenchFailure("the agent \(pid) ended while idle")
        }
        func kib(_ field: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
        }
        let ticks = Double(after - before) / Double(sysconf(Int32(_SC_CLK_TCK)))
        return AgentIdleCost(processes: processes, seconds: lasted, cpuPercent: 100 * ticks / lasted,
                             residentKiB: kib("VmRSS"), anonymousKiB: kib("RssAnon"), fileKiB: kib("RssFile"),
                             hostForks: forksAfter - forksBefore)
    }

    /// utime + stime of `pid`, in clock ticks (/proc/PID/stat fields 14 and 15).
    private static func cpuTicks(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// Forks since boot on the whole host.
    private static func hostForkCount() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("processes ") }.flatMap { Int($0.split(separator: " ")[1]) }
    }
}
