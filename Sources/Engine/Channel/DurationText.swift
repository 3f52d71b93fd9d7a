/// Durations as the product writes them everywhere: `90s`, `5m`, `2h`, `7d`; a bare number is seconds.
public enum DurationText {
    /// The number of seconds `text` means, or nil if it is not a positive duration in that form.
    public static func seconds(_ text: String) -> Int? {
        var digits = Substring(text)
        var unit = 1
        switch text.last {
        case "s": unit = 1; digits = digits.dropLast()
        case "m": unit = 60; digits = digits.dropLast()
        case "h": unit = 3600; digits = digits.dropLast()
        case "d": unit = 86_400; digits = digits.dropLast()
        default: break
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let value = Int(digits), value > 0
        else { return nil }
        let (total, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? nil : total
    }
}
