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
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "\t" || $0 == "\"" || $0 == "\n" }
        guard needsQuotes else { return escaped(value) }
        return "\"" + escaped(value).replacingOccurrences("\"", with: "\\\"") + "\""
    }

    /// Newlines are escaped so one entry is always one line.
    private static func escaped(_ text: String) -> String {
        text.replacingOccurrences("\n", with: "\\n")
    }
}

extension String {
    /// Replaces every `target` without Foundation (AgentCore's logging stays Foundation-free).
    fileprivate func replacingOccurrences(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
