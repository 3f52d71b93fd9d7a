/// Durations as the product writes them everywhere: `90s`, `5m`, `2h`, `7d`; a bare number is seconds.
///
/// Every duration the agent and the publisher's tool accept lies between `minimumSeconds` (1 s) and
/// `maximumSeconds` (3650 days): the bound every consumer can hold without overflow (`Duration`,
/// `Double` seconds, `Date` arithmetic, systemd's microseconds in a `UInt64`).
public enum DurationText {
    /// The shortest accepted duration, in seconds.
    public static let minimumSeconds = 1
    /// The longest accepted duration, in seconds: 3650 days.
    public static let maximumSeconds = 3650 * 86_400
    /// The accepted range as people read it, for messages and docs.
    public static let rangeText = "1s to 3650d"

    /// Why a text is not an acceptable duration.
    public enum Problem: Error, Equatable, Sendable {
        /// Not written as a duration at all (`1e30`, `5 m`, `1w`, an empty text).
        case notADuration
        /// Written as a duration, but zero, negative, or beyond `maximumSeconds`.
        case outOfRange
    }

    /// The number of seconds `text` means, within the accepted range; the problem otherwise.
    public static func parse(_ text: String) throws(Problem) -> Int {
        var digits = Substring(text)
        let negative = digits.first == "-"
        if negative { digits = digits.dropFirst() }
        var unit = 1
        switch digits.last {
        case "s": unit = 1; digits = digits.dropLast()
        case "m": unit = 60; digits = digits.dropLast()
        case "h": unit = 3600; digits = digits.dropLast()
        case "d": unit = 86_400; digits = digits.dropLast()
        default: break
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw .notADuration }
        // Digits that overflow an Int are a duration, just far out of range.
        guard let value = Int(digits) else { throw .outOfRange }
        let (total, overflow) = value.multipliedReportingOverflow(by: unit)
        guard !negative, !overflow else { throw .outOfRange }
        return try checked(total)
    }

    /// `seconds` if it lies within the accepted range (for durations given as TOML integers).
    public static func checked(_ seconds: Int) throws(Problem) -> Int {
        guard seconds >= minimumSeconds, seconds <= maximumSeconds else { throw .outOfRange }
        return seconds
    }

    /// The number of seconds `text` means, or nil if it is not a duration in the accepted range.
    public static func seconds(_ text: String) -> Int? {
        try? parse(text)
    }
}
