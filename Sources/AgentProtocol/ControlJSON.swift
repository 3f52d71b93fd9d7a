import Foundation

/// The documented JSON documents of `agentctl status|processes|history --json` (docs/STATUS.md):
/// pretty-printed, keys sorted, and every optional field present (null when absent), so scripts can
/// rely on each key existing.
public enum ControlJSON {
    /// `status --json`: one object.
    public static func document(_ status: AgentStatus) throws -> Data {
        try render(status, nullable: [["hotpatch"], ["baseline", "active"], ["hotpatch", "description"],
                                      ["channel", "version"], ["channel", "lastCheck"], ["channel", "error"],
                                      ["lastPauseUsec"]])
    }

    /// `processes --json`: an array of objects.
    public static func document(_ processes: [ProcessEntry]) throws -> Data {
        try render(processes, nullable: [["reason"], ["pauseUsec"], ["hotpatch"]])
    }

    /// `history --json`: an array of objects, oldest first.
    public static func document(_ history: [HistoryEntry]) throws -> Data {
        try render(history, nullable: [["release"]])
    }

    private static func render(_ value: some Encodable, nullable: [[String]]) throws -> Data {
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value), options: [.fragmentsAllowed])
        let filled: Any
        if let array = object as? [Any] {
            filled = array.map { element in fill(element, nullable) }
        } else {
            filled = fill(object, nullable)
        }
        return try JSONSerialization.data(withJSONObject: filled, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    private static func fill(_ value: Any, _ paths: [[String]]) -> Any {
        guard var object = value as? [String: Any] else { return value }
        for path in paths { setNullIfMissing(&object, path[...]) }
        return object
    }

    private static func setNullIfMissing(_ object: inout [String: Any], _ path: ArraySlice<String>) {
        guard let key = path.first else { return }
        if path.count == 1 {
            if object[key] == nil { object[key] = NSNull() }
            return
        }
        guard var child = object[key] as? [String: Any] else { return }
        setNullIfMissing(&child, path.dropFirst())
        object[key] = child
    }
}
