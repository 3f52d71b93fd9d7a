import Foundation

/// The human forms of `agentctl`'s answers: pure functions of the answer and the current time.
public enum ControlText {
    /// The exec gate's line: whether new processes run the fix from their first call, and counts.
    public static func execGateLine(_ gate: AgentStatus.ExecGateStatus) -> String {
        guard gate.mode == "fanotify" else {
            return "patched soon after they start (exec gate off: \(printable(gate.reason ?? "unknown reason")))"
        }
        return "patched before their first call (exec gate: \(gate.patched) patched at start, \(gate.letGo) let go, \(gate.notHeld) not held)"
    }

    /// The kernel's line: its release, then the live patch's state.
    public static func kernelLine(_ kernel: AgentStatus.Kernel) -> String {
        let fix = kernel.hotpatch.map { id in "\(id) level \(kernel.level.map(String.init) ?? "?") (\(kernel.livepatch ?? "?"))" }
        switch kernel.state {
        case .none:
            return "\(kernel.release): no live patch"
        case .applied:
            return "\(kernel.release): \(fix ?? "live patch") applied"
        case .inTransition:
            let seconds = kernel.transitionSeconds.map { " for \(Int($0.rounded())) s" } ?? ""
            let tasks = kernel.blocking.isEmpty ? "" : ", blocked by " + kernel.blocking.map { "\(printable($0.comm)) (pid \($0.pid), tid \($0.tid))" }.joined(separator: ", ")
            return "\(kernel.release): \(fix ?? "live patch") in transition\(seconds)\(tasks)"
        case .failed:
            return "\(kernel.release): \(fix ?? "live patch") failed: \(kernel.reason.map(printable) ?? "no reason given")"
        case .notApplicable:
            return "\(kernel.release): \(fix ?? "live patch") not applicable: \(kernel.reason.map(printable) ?? "no reason given")"
        }
    }

    /// The status summary: the verdict first, then baseline, hotpatch, kernel, processes, reboot, channel, reasons.
    public static func status(_ status: AgentStatus, now: Date = Date()) -> String {
        var lines: [String] = []
        let phrase = status.verdict.phrase
        lines.append(phrase.prefix(1).uppercased() + phrase.dropFirst())

        var baseline = status.baseline.active ?? "none known yet"
        if !status.baseline.pending.isEmpty {
            baseline += " (installed, awaiting reboot: \(status.baseline.pending.joined(separator: ", ")))"
        }
        let hotpatch: String
        if let inForce = status.hotpatch {
            let cves = inForce.cves.isEmpty ? "no CVEs listed" : inForce.cves.joined(separator: ", ")
            hotpatch = "\(inForce.id) level \(inForce.level) — \(cves)"
        } else {
            hotpatch = "none"
        }
        let counts = status.processes
        let reboot = status.reboot.required
            ? "required — " + (status.reboot.reasons.isEmpty ? "no reason given" : status.reboot.reasons.joined(separator: "; "))
            : "not required"
        var channel: String
        if let lastCheck = status.channel.lastCheck {
            channel = "checked \(relative(lastCheck, now: now))"
        } else {
            channel = "not checked yet"
        }
        if let version = status.channel.version { channel += ", version \(version)" }

        lines.append("  baseline:   \(baseline)")
        lines.append("  hotpatch:   \(hotpatch)")
        if let objects = status.hotpatch?.objects, objects.count > 1 || objects.contains(where: { $0.hotpatch != status.hotpatch?.id }) {
            for object in objects { lines.append("    object \(object.path): \(object.hotpatch) level \(object.level)") }
        }
        if let kernel = status.kernel { lines.append("  kernel:     \(kernelLine(kernel))") }
        lines.append("  processes:  \(counts.patched) patched, \(counts.pending) pending, \(counts.unpatchable) unpatchable"
                     + (counts.vulnerable > 0 ? " (\(counts.vulnerable) still running vulnerable code: agentctl processes)" : ""))
        for packages in status.fixedPackages { lines.append("  packages:   \(fixedPackagesLine(packages))") }
        if let gate = status.execGate { lines.append("  new processes: \(execGateLine(gate))") }
        lines.append("  reboot:     \(reboot)")
        lines.append("  channel:    \(channel)")
        if let error = status.channel.error { lines.append("  channel error: \(error)") }
        if !status.enrolled { lines.append("  enrolled:   no (run `agentctl enroll` to take hotpatches again)") }
        if status.reasons.isEmpty {
            lines.append("Reasons: none")
        } else {
            lines.append("Reasons:")
            for reason in status.reasons.sorted(by: { $0.verdict > $1.verdict }) {
                lines.append("  - \(reason.verdict.phrase): \(printable(reason.message))")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The `packages:` line of one hotpatch release's fixed packages: `ID: installed NAME VERSION
    /// (was V), …`, `ID: pending (installed after its processes are patched)`, `ID: install failed: …`.
    public static func fixedPackagesLine(_ packages: AgentStatus.FixedPackages) -> String {
        switch packages.state {
        case .installed:
            let list = packages.packages.map { package in
                let before = package.previousVersion.map { "was \($0)" } ?? "was not installed"
                switch package.action {
                case "already-current": return "\(package.name) \(package.previousVersion ?? package.version) (already current)"
                case "not-installed": return "\(package.name) \(package.version) (not installed here, left alone)"
                default: return "\(package.name) \(package.version) (\(before))"
                }
            }
            return "\(packages.hotpatch): installed on disk, no reboot needed — " + list.joined(separator: ", ")
        case .pending:
            return "\(packages.hotpatch): not on disk yet (installed after its processes are patched)"
        case .installing:
            return "\(packages.hotpatch): installing on disk now (dpkg running since \(packages.installingSince ?? "?"))"
        case .failed:
            return "\(packages.hotpatch): install failed, the hotpatch stays applied — \(packages.reason.map(printable) ?? "no reason given")"
        }
    }

    /// The process table: PID, STATE, PAUSE, EXECUTABLE, REASON. Under a process that maps several
    /// targeted objects, or whose object runs another level's fix, one indented line per object
    /// says which release's fix it runs (`object PATH: ID level N`, or `none`). Under a process that
    /// still runs vulnerable code (it could not be patched), a line names the objects and its
    /// systemd unit, and a last paragraph lists those processes' units to restart.
    public static func processes(_ entries: [ProcessEntry]) -> String {
        guard !entries.isEmpty else { return "No process maps a targeted object." }
        let sorted = entries.sorted { $0.pid < $1.pid }
        let rows = sorted.map { entry in
            [String(entry.pid), entry.state.rawValue, entry.pauseUsec.map(pause) ?? "-", printable(entry.executable),
             entry.reason.map(printable) ?? "-"]
        }
        let lines = table(header: ["PID", "STATE", "PAUSE", "EXECUTABLE", "REASON"], rows: rows).split(separator: "\n").map(String.init)
        var output = [lines[0]]
        for (entry, line) in zip(sorted, lines.dropFirst()) {
            output.append(line)
            let detailed = entry.objects.count > 1 || entry.objects.contains { $0.hotpatch != nil && $0.hotpatch != entry.hotpatch }
            if detailed {
                for object in entry.objects {
                    let fix = object.hotpatch.map { id in object.level.map { "\(id) level \($0)" } ?? id } ?? "none"
                    output.append("    object \(printable(object.path)): \(printable(fix))" + (object.reason.map { " (refused: \(printable($0)))" } ?? ""))
                }
            }
            if entry.vulnerable {
                let objects = entry.objects.filter(\.vulnerable).map { printable($0.path) }
                output.append("    still running vulnerable code: \(objects.joined(separator: ", "))"
                              + (entry.unit.map { " (unit \(printable($0)))" } ?? " (no systemd unit)"))
            }
        }
        let vulnerable = sorted.filter(\.vulnerable)
        if !vulnerable.isEmpty {
            let units = Array(Set(vulnerable.compactMap(\.unit).filter(isRestartableSystemService))).sorted().map(printable)
            let others = vulnerable.filter { !($0.unit.map(isRestartableSystemService) ?? false) }.map { String($0.pid) }
            output.append("")
            output.append("\(vulnerable.count) process(es) still run vulnerable code: each stays exposed until the agent patches it, it is restarted (it then loads the fixed file, once that is on disk) or it ends."
                          + (units.isEmpty ? "" : " Units to restart: \(units.joined(separator: " ")) (systemctl restart UNIT).")
                          + (others.isEmpty ? "" : " Not in a system service (a scope, a user's unit or none): restart the program of PID \(others.joined(separator: ", "))."))
        }
        return output.joined(separator: "\n")
    }

    /// `text` safe to print on a terminal: every character that is not printable (C0 and C1
    /// controls such as ESC, DEL, line and paragraph separators, other format characters) and the
    /// backslash are escaped (`\x1b`, `\\`, `\u{2028}`), so a name taken from a process or the host
    /// (a cgroup, a command, a path) cannot move the cursor, recolour or forge lines.
    public static func printable(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                result += scalar.value <= 0xFF
                    ? "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                    : "\\u{" + String(scalar.value, radix: 16) + "}"
            default:
                if scalar == "\\" { result += "\\\\" } else { result.unicodeScalars.append(scalar) }
            }
        }
        return result
    }

    /// Whether `unit` (as `ProcessEntry.unit` gives it) is a system service, which
    /// `systemctl restart` can restart: not a scope (a scope is never restarted, only its
    /// programs), and not a user's unit (`app.service (user 1000)`, named by that user).
    public static func isRestartableSystemService(_ unit: String) -> Bool {
        unit.hasSuffix(".service") && !unit.contains(" ")
    }

    /// What restarts a process in `unit`: `systemctl restart UNIT` for a system service, else
    /// "restart the program" (a scope, a user's unit, no unit).
    public static func restartAdvice(unit: String?) -> String {
        guard let unit, isRestartableSystemService(unit) else { return "restart the program" }
        return "systemctl restart \(printable(unit))"
    }

    /// The history table: TIME, EVENT, RELEASE, MESSAGE, oldest first.
    public static func history(_ entries: [HistoryEntry]) -> String {
        guard !entries.isEmpty else { return "No actions recorded yet." }
        let rows = entries.map { [$0.time, $0.event, $0.release.map(printable) ?? "-", printable($0.message)] }
        return table(header: ["TIME", "EVENT", "RELEASE", "MESSAGE"], rows: rows)
    }

    /// "just now", "42 s ago", "2 min ago", "3 h ago", "5 d ago" for an RFC 3339 time; the text itself
    /// when it cannot be read.
    public static func relative(_ rfc3339: String, now: Date) -> String {
        guard let date = parseRFC3339(rfc3339) else { return rfc3339 }
        let seconds = Int(now.timeIntervalSince(date).rounded(.down))
        switch seconds {
        case ..<(-5): return "\(rfc3339) (in the future: check the clock)"
        case ..<5: return "just now"
        case ..<60: return "\(seconds) s ago"
        case ..<3600: return "\(seconds / 60) min ago"
        case ..<86400: return "\(seconds / 3600) h ago"
        default: return "\(seconds / 86400) d ago"
        }
    }

    /// Parses RFC 3339 with or without fractional seconds.
    public static func parseRFC3339(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    private static func pause(_ microseconds: UInt64) -> String {
        microseconds < 1000 ? "\(microseconds) us" : String(format: "%.1f ms", Double(microseconds) / 1000)
    }

    private static func table(header: [String], rows: [[String]]) -> String {
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        return ([header] + rows).map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
