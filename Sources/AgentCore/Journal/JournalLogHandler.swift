import CSystemd
import Glibc
import Logging

/// A swift-log handler that writes native journal entries through libsystemd.
///
/// Metadata keys become journal fields (`hotpatch.id` → `HOTPATCH_ID`, `event` → `MESSAGE_ID`), so
/// `journalctl MESSAGE_ID=… HOTPATCH_ID=…` and the catalog work. It is a value type and `log` never
/// throws: a journal that cannot be reached loses the entry rather than stalling the agent.
public struct JournalLogHandler: AgentLogHandler {
    /// The logger's label (not sent: the journal identifies us by SYSLOG_IDENTIFIER).
    public let label: String
    /// Metadata attached to every entry from this handler.
    public var metadata: Logger.Metadata = [:]
    /// The minimum level this handler emits.
    public var logLevel: Logger.Level = .info
    /// Contextual metadata added to every entry.
    public var metadataProvider: Logger.MetadataProvider?

    /// A handler for `label`, using the global metadata provider unless one is given.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    /// Sends one entry with `sd_journal_sendv`.
    public func log(event: LogEvent) {
        let merged = mergedMetadata(event)
        let fields = JournalFields.fields(
            level: event.level, message: event.message.description, metadata: merged, error: event.error,
            file: event.file, function: event.function, line: event.line)
        // The result is ignored on purpose: libsystemd returns 0 even with no journald, and a
        // logging failure must not become an agent failure.
        _ = Self.send(fields)
    }

    /// Sends `fields` as one entry; returns libsystemd's result (0 or a negative errno).
    ///
    /// The corresponding C function is `sd_journal_sendv`; the variadic `sd_journal_send` cannot be
    /// called from Swift. libsystemd itself switches to the binary-safe encoding for values that
    /// contain a newline.
    static func send(_ fields: [JournalField]) -> Int32 {
        // One contiguous buffer of "NAME=value" items, then iovecs pointing into it.
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = bytes.count
            bytes.append(contentsOf: field.name.utf8)
            bytes.append(UInt8(ascii: "="))
            bytes.append(contentsOf: field.value.utf8)
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeMutableBytes { buffer -> Int32 in
            let vectors = ranges.map { range in
                iovec(iov_base: buffer.baseAddress! + range.lowerBound, iov_len: range.count)
            }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}
