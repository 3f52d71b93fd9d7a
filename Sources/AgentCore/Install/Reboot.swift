import Foundation

/// The Debian reboot request: `/run/reboot-required` (a banner motd shows) and `.pkgs` beside it
/// (the names of the packages that ask for the reboot, one a line, as unattended-upgrades,
/// update-notifier and the motd scripts read and write it). Those tools write these files too, so
/// the agent only ever adds and removes its own lines: a line
/// `hotpatch-agent: <release id>: <reason> (packages: <name> …)` in the flag file, and the package
/// names in `.pkgs`, each listed once.
public struct RebootRequest: Sendable {
    /// The flag file, e.g. /run/reboot-required.
    public let file: String
    /// The list beside it: `file` + ".pkgs".
    public var packagesFile: String { file + ".pkgs" }

    /// The banner update-notifier writes; motd prints the file as is.
    static let banner = "*** System restart required ***"
    private static let linePrefix = "hotpatch-agent: "
    private static let packagesMarker = " (packages: "
    /// What `.pkgs` names for a release that installs only plain files: the package whose agent
    /// installed them.
    public static let agentPackage = "hotpatch-agent"

    /// The request kept in `file` (and `file.pkgs`).
    public init(file: String) {
        self.file = file
    }

    /// Asks for a reboot because of `releaseID`: the banner (if missing) and our reason line in the
    /// flag file, and each of `packages` (the names of the Debian packages the release installed;
    /// `hotpatch-agent` when it installed only plain files) appended to `.pkgs` unless listed; both
    /// rewritten atomically. Both files' directories are resolved with `InstallPath` first.
    public func request(releaseID: String, reason: String, packages: [String]) throws {
        let names = Self.unique(packages.isEmpty ? [Self.agentPackage] : packages)
        var lines = try Self.lines(of: file)
        if !lines.contains(Self.banner) { lines.insert(Self.banner, at: 0) }
        // One line per release: a newer reason replaces the older one.
        lines.removeAll { Self.releaseID(ofLine: $0) == releaseID }
        let text = reason.split(whereSeparator: \.isNewline).joined(separator: " ")
        lines.append(Self.linePrefix + releaseID + ": " + text + Self.packagesMarker + names.joined(separator: " ") + ")")
        var listed = try Self.lines(of: packagesFile)
        for name in names where !listed.contains(name) { listed.append(name) }
        // .pkgs first: a reader that sees the flag file can then always find why.
        try Self.write(Self.unique(listed), to: packagesFile)
        try Self.write(lines, to: file)
    }

    /// Withdraws every request the agent made: our lines go, and the packages they name (and, from
    /// agents that listed release ids there, those ids) leave `.pkgs`. Both files are removed only
    /// if `.pkgs` then lists nothing else; otherwise another tool's request stands.
    public func clear() throws {
        let lines = try Self.lines(of: file)
        let ourLines = lines.filter { Self.releaseID(ofLine: $0) != nil }
        let ours = Set(ourLines.compactMap(Self.releaseID(ofLine:)) + ourLines.flatMap(Self.packages(ofLine:)))
        let others = Self.unique(try Self.lines(of: packagesFile).filter { !ours.contains($0) })
        let remaining = lines.filter { Self.releaseID(ofLine: $0) == nil }
        if others.isEmpty {
            try FileSystem.removeFile(try InstallPath.resolve(file))
            try FileSystem.removeFile(try InstallPath.resolve(packagesFile))
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

    /// The package names our line lists after its release's reason; none for a line without them.
    private static func packages(ofLine line: String) -> [String] {
        guard line.hasSuffix(")"), let marker = line.range(of: packagesMarker, options: .backwards) else { return [] }
        return line[marker.upperBound..<line.index(before: line.endIndex)].split(separator: " ").map(String.init)
    }

    /// `names` in their first order, each once.
    private static func unique(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    private static func lines(of path: String) throws(AgentCoreError) -> [String] {
        guard let bytes = try FileSystem.readIfPresent(path, limit: 1 << 20) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
    }

    private static func write(_ lines: [String], to path: String) throws(AgentCoreError) {
        try FileSystem.writeAtomically(try InstallPath.resolve(path), bytes: Array(lines.map { $0 + "\n" }.joined().utf8), mode: 0o644)
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
