import Foundation

/// The documented JSON documents of `agentctl status|processes|history --json` (docs/STATUS.md):
/// pretty-printed, keys sorted, and every optional field present (null when absent), so scripts can
/// rely on each key existing. The nulls come from the types themselves (`NullKeepingEncoder`), so a
/// field added to them is in the document without a list to keep up to date.
public enum ControlJSON {
    /// `status --json`: one object.
    public static func document(_ status: AgentStatus) throws -> Data {
        try render(status)
    }

    /// `processes --json`: an array of objects.
    public static func document(_ processes: [ProcessEntry]) throws -> Data {
        try render(processes)
    }

    /// `history --json`: an array of objects, oldest first.
    public static func document(_ history: [HistoryEntry]) throws -> Data {
        try render(history)
    }

    private static func render(_ value: some Encodable) throws -> Data {
        try JSONSerialization.data(withJSONObject: NullKeepingEncoder.object(value),
                                   options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }
}
