import Logging

/// One native journal field: a valid field name and its value.
struct JournalField: Equatable, Sendable {
    var name: String
    var value: String
}

/// Pure mapping from a swift-log event to journal fields, kept apart from the socket so it is
/// tested without journald.
enum JournalFields {
    /// The fields the handler itself sets; metadata that would collide gets a `META_` prefix so a
    /// caller's `message` key cannot forge a second MESSAGE or PRIORITY.
    static let reserved: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
    ]

    /// The syslog identifier every entry carries, so `journalctl -t hotpatch-agent` finds them.
    static let syslogIdentifier = "hotpatch-agent"

    /// The syslog priority (0 emerg … 7 debug) for a swift-log level.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A valid journal field name for a metadata key: `hotpatch.id` → `HOTPATCH_ID`.
    ///
    /// journald drops fields whose names are not `[A-Z0-9_]`, start with `_` (trusted fields) or a
    /// digit, or exceed 64 bytes; sanitising keeps the value instead of losing it silently.
    static func fieldName(forKey key: String) -> String {
        // ASCII arithmetic, one byte a scalar: every key of every entry passes here.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(key.utf8.count)
        for scalar in key.unicodeScalars {
            switch scalar.value {
            case 0x61...0x7A: bytes.append(UInt8(scalar.value - 0x20))
            case 0x41...0x5A, 0x30...0x39, 0x5F: bytes.append(UInt8(scalar.value))
            default: bytes.append(UInt8(ascii: "_"))
            }
        }
        var name = String(decoding: bytes.drop { $0 == UInt8(ascii: "_") }, as: UTF8.self)
        if name.isEmpty { name = "UNNAMED" }
        if let first = name.first, first.isNumber { name = "F_" + name }
        if reserved.contains(name) { name = "META_" + name }
        return String(name.prefix(64))
    }

    /// Every field for one log event, in a stable order: the fixed ones first, then metadata
    /// sorted by key (handler metadata, then the provider's, then the call's, later ones winning).
    static func fields(
        level: Logger.Level,
        message: String,
        metadata: Logger.Metadata,
        error: (any Error)? = nil,
        file: String,
        function: String,
        line: UInt
    ) -> [JournalField] {
        var fields = [
            JournalField(name: "MESSAGE", value: message),
            JournalField(name: "PRIORITY", value: String(priority(level))),
            JournalField(name: "SYSLOG_IDENTIFIER", value: syslogIdentifier),
            JournalField(name: "CODE_FILE", value: file),
            JournalField(name: "CODE_LINE", value: String(line)),
            JournalField(name: "CODE_FUNC", value: function),
        ]
        for key in metadata.keys.sorted() {
            guard let value = metadata[key] else { continue }
            if key == "event", case .string(let raw) = value, let event = JournalEvent(rawValue: raw) {
                fields.append(JournalField(name: "MESSAGE_ID", value: event.messageID))
                continue
            }
            append(value, key: key, to: &fields)
        }
        if let error {
            fields.append(JournalField(name: "ERROR", value: String(describing: error)))
        }
        return fields
    }

    /// Arrays become repeated fields (the journal allows several values per name, e.g. one CVE
    /// each); dictionaries flatten to dotted keys.
    private static func append(_ value: Logger.MetadataValue, key: String, to fields: inout [JournalField]) {
        switch value {
        case .string(let text):
            fields.append(JournalField(name: fieldName(forKey: key), value: text))
        case .stringConvertible(let convertible):
            fields.append(JournalField(name: fieldName(forKey: key), value: convertible.description))
        case .array(let values):
            for element in values { append(element, key: key, to: &fields) }
        case .dictionary(let dictionary):
            for subkey in dictionary.keys.sorted() {
                append(dictionary[subkey]!, key: key + "." + subkey, to: &fields)
            }
        }
    }

    /// Metadata merged the way swift-log expects: handler, then provider, then the call site.
    static func merge(
        handler: Logger.Metadata, provider: Logger.MetadataProvider?, call: Logger.Metadata?
    ) -> Logger.Metadata {
        var merged = handler
        if let provided = provider?.get() { merged.merge(provided) { _, new in new } }
        if let call { merged.merge(call) { _, new in new } }
        return merged
    }
}

/// What the agent's two log handlers (journal, stderr) share: metadata set on the handler, merged
/// with the provider's and the call's before an entry is written.
public protocol AgentLogHandler: LogHandler {}

extension AgentLogHandler {
    /// Reads or writes one metadata value of this handler.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The handler's, the provider's and the call's metadata, the call's winning.
    func mergedMetadata(_ event: LogEvent) -> Logger.Metadata {
        JournalFields.merge(handler: metadata, provider: metadataProvider, call: event.metadata)
    }
}
