import Foundation

/// The Debian reboot request: `/run/reboot-required` (a banner motd shows) and `.pkgs` beside it
/// (what asks for the reboot, one a line). Other tools (update-notifier, maintainer scripts) write
/// these files too, so the agent only ever adds and removes its own lines: a line
/// `hotpatch-agent: <release id>: <reason>` in the flag file, and the release id in `.pkgs`.
public struct RebootRequest: Sendable {
    /// The flag file, e.g. /run/reboot-required.
    public let file: String
    /// The list beside it: `file` + ".pkgs".
    public var packagesFile: String { file + ".pkgs" }

    /// The banner update-notifier writes; motd prints the file as is.
    static let banner = "*** System restart required ***"
    private static let linePrefix = "hotpatch-agent: "

    /// The request kept in `file` (and `file.pkgs`).
    public init(file: String) {
        self.file = file
    }

    /// Asks for a reboot because of `releaseID`: the banner (if missing) and our reason line in the
    /// flag file, the release id appended to `.pkgs` unless listed; both rewritten atomically.
    public func request(releaseID: String, reason: String) throws {
        var lines = try Self.lines(of: file)
        if !lines.contains(Self.banner) { lines.insert(Self.banner, at: 0) }
        // One line per release: a newer reason replaces the older one.
        lines.removeAll { Self.releaseID(ofLine: $0) == releaseID }
        lines.append(Self.linePrefix + releaseID + ": " + reason.split(whereSeparator: \.isNewline).joined(separator: " "))
        var packages = try Self.lines(of: packagesFile)
        if !packages.contains(releaseID) { packages.append(releaseID) }
        // .pkgs first: a reader that sees the flag file can then always find why.
        try Self.write(packages, to: packagesFile)
        try Self.write(lines, to: file)
    }

    /// Withdraws every request the agent made: our lines go, and our ids leave `.pkgs`. Both files
    /// are removed only if `.pkgs` then lists nothing else; otherwise another tool's request stands.
    public func clear() throws {
        let lines = try Self.lines(of: file)
        let ours = Set(lines.compactMap(Self.releaseID(ofLine:)))
        let others = try Self.lines(of: packagesFile).filter { !ours.contains($0) }
        let remaining = lines.filter { Self.releaseID(ofLine: $0) == nil }
        if others.isEmpty {
            try FileSystem.removeFile(file)
            try FileSystem.removeFile(packagesFile)
            try FileSystem.syncDirectory(FileSystem.directoryName(file))
            return
        }
        try Self.write(others, to: packagesFile)
        try Self.write(remaining.isEmpty ? [Self.banner] : remaining, to: file)
    }

    /// Whether a request of ours is in the flag file.
    public var isRequested: Bool { !requestedReleases.isEmpty }

    /// The release ids our lines in the flag file name, in order.
    public var requestedReleases: [String] {
        ((try? Self.lines(of: file)) ?? []).compactMap(Self.releaseID(ofLine:))
    }

    private static func releaseID(ofLine line: String) -> String? {
        guard line.hasPrefix(linePrefix) else { return nil }
        let rest = line.dropFirst(linePrefix.count)
        guard let colon = rest.range(of: ": ") else { return String(rest) }
        return String(rest[..<colon.lowerBound])
    }

    private static func lines(of path: String) throws(AgentCoreError) -> [String] {
        guard let bytes = try FileSystem.readIfPresent(path, limit: 1 << 20) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
    }

    private static func write(_ lines: [String], to path: String) throws(AgentCoreError) {
        try FileSystem.writeAtomically(path, bytes: Array(lines.map { $0 + "\n" }.joined().utf8), mode: 0o644)
    }
}

/// Rebooting the host under the `auto` policy. Whether to reboot is a pure decision
/// (`shouldRebootNow`), taken apart from the act (`reboot`), so the decision is tested without rebooting.
public enum RebootAction {
    /// Reboot only when the policy is `auto`, something awaits a reboot, and `now` is inside the
    /// window (any time when there is none).
    public static func shouldRebootNow(policy: RebootPolicy, window: MaintenanceWindow?, now: Date, pending: Bool,
                                       calendar: Calendar = .current) -> Bool {
        guard policy == .auto, pending else { return false }
        return window?.contains(now, calendar: calendar) ?? true
    }

    /// Asks systemd to reboot (`systemctl --no-block reboot`); returns once the request is queued.
    /// Bounded: systemd stops this agent as part of the reboot, and a shutdown that waits for a
    /// hung `systemctl` would hold the whole reboot until the unit's stop timeout.
    public static func reboot(systemctl: String = "/usr/bin/systemctl", timeoutSeconds: Double = 30) throws {
        let outcome = try Command.run(systemctl, ["--no-block", "reboot"], timeoutSeconds: timeoutSeconds)
        guard outcome.status == 0 else {
            throw AgentCoreError.commandFailed(command: "\(systemctl) --no-block reboot", status: outcome.status, output: outcome.diagnostic)
        }
    }
}
