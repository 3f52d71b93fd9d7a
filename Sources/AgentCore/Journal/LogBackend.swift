import Glibc
import Logging

/// Where the agent's log goes, as chosen by `--log-target`.
public enum LogTarget: String, CaseIterable, Sendable {
    /// journald when it is there, else standard error.
    case auto
    /// Plain lines on standard error.
    case stderr
    /// Native journal entries through libsystemd.
    case journal
}

/// Chooses and installs the agent's log handler.
public enum LogBackend {
    /// The socket journald listens on; its presence means a journal is running.
    public static let journalSocketPath = "/run/systemd/journal/socket"

    /// Resolves `.auto` to `.journal` or `.stderr`.
    ///
    /// `JOURNAL_STREAM` means systemd connected our stderr to the journal; the socket means a journald
    /// runs. Only these count, because `sd_journal_sendv` returns 0 even when nothing listens.
    public static func resolve(
        _ target: LogTarget,
        environment: [String: String],
        journalSocketExists: Bool
    ) -> LogTarget {
        switch target {
        case .stderr, .journal: return target
        case .auto:
            let streamSet = !(environment["JOURNAL_STREAM"] ?? "").isEmpty
            return streamSet || journalSocketExists ? .journal : .stderr
        }
    }

    /// Resolves `.auto` against this process's environment and file system.
    public static func resolve(_ target: LogTarget) -> LogTarget {
        let stream = getenv("JOURNAL_STREAM").map { String(cString: $0) }
        return resolve(
            target, environment: stream.map { ["JOURNAL_STREAM": $0] } ?? [:],
            journalSocketExists: access(journalSocketPath, F_OK) == 0)
    }

    /// A handler for `label` on the automatically chosen backend.
    public static func makeHandler(label: String) -> any LogHandler {
        makeHandler(label: label, target: .auto)
    }

    /// A handler for `label` on `target` (`.auto` is resolved now).
    public static func makeHandler(label: String, target: LogTarget, level: Logger.Level = .info) -> any LogHandler {
        switch resolve(target) {
        case .journal:
            var handler = JournalLogHandler(label: label)
            handler.logLevel = level
            return handler
        case .stderr, .auto:
            var handler = StderrLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// Installs the chosen backend as swift-log's global handler; call once, at start.
    public static func bootstrap(target: LogTarget = .auto, level: Logger.Level = .info) {
        let resolved = resolve(target)
        LoggingSystem.bootstrap { label in makeHandler(label: label, target: resolved, level: level) }
    }
}
