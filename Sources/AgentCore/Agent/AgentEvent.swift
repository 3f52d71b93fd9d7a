import AgentProtocol
import Logging

/// One line for the journal, and for the history when it records an action. The agent's parts
/// return these instead of logging, so the actor logs each once and tests read them as values.
struct AgentEvent: Equatable, Sendable {
    /// The event (its `MESSAGE_ID` goes to the journal), or nil for a plain line.
    var event: JournalEvent?
    var level: Logger.Level
    var message: String
    /// Structured fields with dotted keys (`target.pid`, `reason`, …), besides `event`.
    var metadata: [String: String]
    /// Whether `agentctl history` keeps it.
    var inHistory: Bool
    /// The release the history entry concerns.
    var release: String?

    /// An action kept in the history and logged.
    static func recorded(_ event: JournalEvent, release: String?, _ message: String, level: Logger.Level,
                         metadata: [String: String] = [:]) -> AgentEvent {
        AgentEvent(event: event, level: level, message: message, metadata: metadata, inHistory: true, release: release)
    }

    /// A journal line only.
    static func logged(_ event: JournalEvent?, _ message: String, level: Logger.Level, metadata: [String: String] = [:]) -> AgentEvent {
        AgentEvent(event: event, level: level, message: message, metadata: metadata, inHistory: false, release: nil)
    }

    /// The journal metadata, `event` included.
    var loggerMetadata: Logger.Metadata {
        var fields = metadata.mapValues { Logger.MetadataValue.string($0) }
        if let event { fields["event"] = .string(event.rawValue) }
        return fields
    }

    /// The history entry, stamped `time`, when the event is kept.
    func historyEntry(time: String) -> HistoryEntry? {
        guard inHistory, let event else { return nil }
        return HistoryEntry(time: time, event: event.rawValue, release: release, message: message)
    }
}
