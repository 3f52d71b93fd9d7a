import Glibc
import LinuxSystem
import Logging

/// A swift-log handler printing one line per entry on standard error:
/// `<level> <message> key=value …`, for running in the foreground without journald.
public struct StderrLogHandler: AgentLogHandler {
    /// The logger's label (not printed: lines stay short).
    public let label: String
    /// Metadata attached to every line from this handler.
    public var metadata: Logger.Metadata = [:]
    /// The minimum level this handler emits.
    public var logLevel: Logger.Level = .info
    /// Contextual metadata added to every line.
    public var metadataProvider: Logger.MetadataProvider?
    /// Where lines go; standard error except in tests, which read a pipe.
    let fileDescriptor: Int32

    /// A handler for `label` writing to standard error.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.init(label: label, metadataProvider: metadataProvider, fileDescriptor: STDERR_FILENO)
    }

    init(label: String, metadataProvider: Logger.MetadataProvider?, fileDescriptor: Int32) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.fileDescriptor = fileDescriptor
    }

    /// Writes one line; never throws, and a failed write is dropped.
    public func log(event: LogEvent) {
        let merged = mergedMetadata(event)
        var line = Self.format(level: event.level, message: event.message.description, metadata: merged)
        if let error = event.error { line += " error=" + Self.quoted(String(describing: error)) }
        line += "\n"
        // One write per line keeps concurrent lines whole; a failed write is dropped.
        try? Descriptor.writeAll(fileDescriptor, Array(line.utf8), subject: "standard error")
    }

    /// The line for one entry, without the newline; keys sorted so output is stable.
    static func format(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var line = "\(level) \(escaped(message))"
        for key in metadata.keys.sorted() {
            line += " \(key)=\(quoted(render(metadata[key]!)))"
        }
        return line
    }

    private static func render(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(render).joined(separator: ",")
        case .dictionary(let dictionary):
            dictionary.keys.sorted().map { "\($0):\(render(dictionary[$0]!))" }.joined(separator: ",")
        }
    }

    /// Quotes a value holding spaces, quotes or nothing, so `key=value` stays splittable.
    static func quoted(_ value: String) -> String {
        // Bytes, not Characters: every line's values pass here, and a grapheme walk cost the agent
        // about 20 µs a line (a landing logs one line per patched process).
        let needsQuotes = value.isEmpty || value.utf8.contains {
            $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\n")
        }
        guard needsQuotes else { return escaped(value) }
        return "\"" + escaped(value).replacingOccurrences("\"", with: "\\\"") + "\""
    }

    /// Newlines are escaped so one entry is always one line.
    private static func escaped(_ text: String) -> String {
        text.replacingOccurrences("\n", with: "\\n")
    }
}

extension String {
    /// Replaces every byte `target` (ASCII) without Foundation (AgentCore's logging stays
    /// Foundation-free). Bytes, not Characters: a "\r\n" is one Character, and its newline must
    /// be escaped too.
    fileprivate func replacingOccurrences(_ target: Unicode.Scalar, with replacement: String) -> String {
        let byte = UInt8(target.value)
        guard utf8.contains(byte) else { return self }
        var result: [UInt8] = []
        result.reserveCapacity(utf8.count + 8)
        for next in utf8 {
            if next == byte { result += replacement.utf8 } else { result.append(next) }
        }
        return String(decoding: result, as: UTF8.self)
    }
}
