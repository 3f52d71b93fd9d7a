/// The rules for paths written in the index: file paths relative to the channel, and installation
/// destinations on the host.
public enum ChannelPath {
    /// Longest path accepted, in bytes (PATH_MAX on Linux).
    public static let maximumLength = 4096

    /// Why `entry` is not a safe, normalised path relative to the channel, or nil if it is one.
    /// Safe means: not empty, not absolute, no empty, `.` or `..` component, no control byte.
    public static func problemWithRelative(_ entry: String) -> String? {
        if entry.isEmpty { return "is empty" }
        if entry.utf8.first == UInt8(ascii: "/") { return "is absolute" }
        return problemWithComponents(entry)
    }

    /// Why `destination` is not an absolute, normalised path, or nil if it is one.
    public static func problemWithDestination(_ destination: String) -> String? {
        guard destination.utf8.first == UInt8(ascii: "/") else { return "is not absolute" }
        let rest = String(destination.dropFirst())
        if rest.isEmpty { return "is the root directory" }
        return problemWithComponents(rest)
    }

    private static func problemWithComponents(_ path: String) -> String? {
        if path.utf8.count > maximumLength { return "is longer than \(maximumLength) bytes" }
        if path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return "contains a control character" }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            switch component {
            case "": return "is not normalised (empty component)"
            case ".": return "is not normalised (has '.')"
            case "..": return "has '..'"
            default: continue
            }
        }
        return nil
    }

    /// The file name extension of `path` (with its dot), if it is short and alphanumeric; the
    /// store keeps it so that `/proc/PID/maps` shows e.g. `….so`.
    public static func safeExtension(of path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        let ext = name[name.index(after: dot)...]
        guard !ext.isEmpty, ext.utf8.count <= 16,
              ext.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) })
        else { return "" }
        return "." + ext
    }
}

/// RFC 3339 timestamps, as the index's `expires` uses them.
public enum RFC3339 {
    /// Seconds since the Unix epoch for `text` (`2025-03-01T12:00:00Z`, fractions and `±HH:MM`
    /// offsets allowed), or nil if it is not an RFC 3339 date-time.
    public static func parse(_ text: String) -> Double? {
        let b = Array(text.utf8)
        func digits(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= b.count else { return nil }
            var value = 0
            for byte in b[start..<start + count] {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        func at(_ index: Int, _ chars: String) -> Bool { index < b.count && chars.utf8.contains(b[index]) }
        guard let year = digits(0, 4), at(4, "-"), let month = digits(5, 2), at(7, "-"), let day = digits(8, 2),
              at(10, "Tt"), let hour = digits(11, 2), at(13, ":"), let minute = digits(14, 2), at(16, ":"),
              let second = digits(17, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var index = 19
        var fraction = 0.0
        if at(index, ".") {
            index += 1
            var scale = 0.1
            let start = index
            while index < b.count, b[index] >= 0x30, b[index] <= 0x39 {
                fraction += Double(b[index] - 0x30) * scale
                scale /= 10
                index += 1
            }
            guard index > start, index - start <= 9 else { return nil }
        }
        var offsetSeconds = 0
        if at(index, "Zz") {
            index += 1
        } else if at(index, "+-") {
            let sign = b[index] == UInt8(ascii: "-") ? -1 : 1
            guard let hours = digits(index + 1, 2), at(index + 3, ":"), let minutes = digits(index + 4, 2),
                  hours <= 23, minutes <= 59
            else { return nil }
            offsetSeconds = sign * (hours * 3600 + minutes * 60)
            index += 6
        } else {
            return nil
        }
        guard index == b.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return Double(seconds) + fraction
    }

    /// `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
    public static func format(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.down))
        var days = whole / 86_400
        var rest = whole % 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        let (year, month, day) = civilFromDays(days)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(rest / 3600, 2)):\(pad(rest / 60 % 60, 2)):\(pad(rest % 60, 2))Z"
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
