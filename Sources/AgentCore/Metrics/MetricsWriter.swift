import AgentProtocol
import Foundation

/// The host's state as a Prometheus node-exporter textfile (`hotpatch.prom`), so an existing
/// Prometheus sees every host. Text exposition format 0.0.4.
public enum MetricsWriter {
    /// The textfile for `status`, stamped with `now` so a stale file (agent gone) can be alerted on.
    public static func render(_ status: AgentStatus, now: Date) -> String {
        var text = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: [(String, String)], value: String)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples {
                let labels = sample.labels.isEmpty
                    ? "" : "{" + sample.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
                text += "\(name)\(labels) \(sample.value)\n"
            }
        }
        metric("hotpatch_verdict", "gauge", "The host's verdict: 1 for the current one, 0 for the others.",
               Verdict.allCases.map { ([("verdict", $0.rawValue)], $0 == status.verdict ? "1" : "0") })
        metric("hotpatch_baseline_info", "gauge", "The active baseline (always 1; the baseline is the label).",
               status.baseline.active.map { [([("baseline", $0)], "1")] } ?? [])
        metric("hotpatch_level", "gauge", "The hotpatch level in force for the active baseline (0 for none).",
               [([], "\(status.hotpatch?.level ?? 0)")])
        metric("hotpatch_processes", "gauge", "Processes mapping a targeted object, by state.", [
            ([("state", "patched")], "\(status.processes.patched)"),
            ([("state", "pending")], "\(status.processes.pending)"),
            ([("state", "unpatchable")], "\(status.processes.unpatchable)"),
        ])
        metric("hotpatch_processes_vulnerable", "gauge",
               "Processes that map an object the hotpatch in force fixes but could not be patched: still running vulnerable code.",
               [([], "\(status.processes.vulnerable)")])
        let kernelLevel = status.kernel?.state == .applied ? status.kernel?.level ?? 0 : 0
        metric("hotpatch_kernel_level", "gauge", "The level of the kernel live patch in force in the running kernel (0 for none).",
               status.kernel.map { [([("release", $0.release)], "\(kernelLevel)")] } ?? [])
        metric("hotpatch_kernel_in_transition", "gauge", "1 while a kernel live patch's transition is under way.",
               status.kernel.map { [([("release", $0.release)], $0.state == .inTransition ? "1" : "0")] } ?? [])
        metric("hotpatch_kernel_state", "gauge", "The kernel live patch's state: 1 for the current one, 0 for the others.",
               status.kernel.map { kernel in AgentStatus.Kernel.State.allCases.map { ([("state", $0.rawValue)], $0 == kernel.state ? "1" : "0") } } ?? [])
        metric("hotpatch_reboot_required", "gauge", "1 when a baseline or fix waits for a reboot.",
               [([], status.reboot.required ? "1" : "0")])
        let lastCheck = status.channel.lastCheck.flatMap(parseRFC3339)
        metric("hotpatch_last_check_timestamp_seconds", "gauge", "When the channel was last checked (Unix time).",
               lastCheck.map { [([], "\(Int64($0.timeIntervalSince1970))")] } ?? [])
        metric("hotpatch_last_pause_microseconds", "gauge", "The pause of the last patch of a process.",
               status.lastPauseUsec.map { [([], "\($0)")] } ?? [])
        metric("hotpatch_channel_version", "gauge", "The channel index version last accepted.",
               status.channel.version.map { [([], "\($0)")] } ?? [])
        metric("hotpatch_enrolled", "gauge", "1 when the host takes hotpatches.", [([], status.enrolled ? "1" : "0")])
        metric("hotpatch_metrics_timestamp_seconds", "gauge", "When the agent wrote this file (Unix time).",
               [([], "\(Int64(now.timeIntervalSince1970))")])
        return text
    }

    /// Writes the textfile atomically (temporary file in the same directory, then rename), so the
    /// node exporter never reads half of it.
    public static func write(_ status: AgentStatus, to path: String, now: Date) throws {
        try FileSystem.writeAtomically(path, bytes: Array(render(status, now: now).utf8), mode: 0o644)
    }

    /// An RFC 3339 time, with or without fractional seconds.
    private static func parseRFC3339(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    /// A label value escaped as the format requires: backslash, double quote and newline.
    static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
