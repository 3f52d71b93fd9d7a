import Foundation

/// When the agent may reboot on its own (`reboot = "auto"`), in local time: every day
/// (`"02:00-04:00"`) or on some days (`"Sun 02:00-04:00"`, `"Mon,Thu 23:00-01:00"`, `"Mon-Fri 22:00-23:30"`).
/// A window whose end is not after its start wraps past midnight and belongs to the day it starts.
public struct MaintenanceWindow: Sendable, Equatable, CustomStringConvertible {
    /// Days the window starts on, as `Calendar` weekdays (1 = Sunday … 7 = Saturday); all seven for daily.
    public let weekdays: Set<Int>
    /// Start, in minutes after local midnight (0 ..< 1440).
    public let startMinute: Int
    /// End, in minutes after local midnight (1 ... 1440); not after `startMinute` means it wraps.
    public let endMinute: Int

    /// Day names in the order people read a week (Monday first), with their `Calendar` weekday.
    private static let days: [(name: String, weekday: Int)] = [
        ("Mon", 2), ("Tue", 3), ("Wed", 4), ("Thu", 5), ("Fri", 6), ("Sat", 7), ("Sun", 1),
    ]

    /// The window `text` describes, or nil when it is not in one of the documented forms.
    public static func parse(_ text: String) -> MaintenanceWindow? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        let dayText: Substring?
        let timeText: Substring
        switch parts.count {
        case 1: dayText = nil; timeText = parts[0]
        case 2: dayText = parts[0]; timeText = parts[1]
        default: return nil
        }
        var weekdays = Set(days.map(\.weekday))
        if let dayText {
            weekdays = []
            for item in dayText.split(separator: ",", omittingEmptySubsequences: false) {
                let range = item.split(separator: "-", omittingEmptySubsequences: false)
                guard range.count == 1 || range.count == 2,
                      let first = dayIndex(range[0]), let last = dayIndex(range[range.count - 1])
                else { return nil }
                // "Fri-Mon" wraps over the weekend.
                var index = first
                while true {
                    weekdays.insert(days[index].weekday)
                    if index == last { break }
                    index = (index + 1) % days.count
                }
            }
        }
        let times = timeText.split(separator: "-", omittingEmptySubsequences: false)
        guard times.count == 2, let start = minutes(times[0]), start < 1440, var end = minutes(times[1]), end != start
        else { return nil }
        // "22:00-00:00" ends at midnight, like "22:00-24:00".
        if end == 0 { end = 1440 }
        return MaintenanceWindow(weekdays: weekdays, startMinute: start, endMinute: end)
    }

    /// Whether `date` falls inside the window, reading the wall clock of `calendar`'s time zone.
    public func contains(_ date: Date, calendar: Calendar = .current) -> Bool {
        let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        guard let weekday = parts.weekday, let hour = parts.hour, let minute = parts.minute else { return false }
        let now = hour * 60 + minute
        if startMinute < endMinute {
            return weekdays.contains(weekday) && now >= startMinute && now < endMinute
        }
        // Wrapping: the evening part belongs to today, the early-morning part to yesterday's window.
        let yesterday = weekday == 1 ? 7 : weekday - 1
        return (weekdays.contains(weekday) && now >= startMinute) || (weekdays.contains(yesterday) && now < endMinute)
    }

    /// The canonical text (`"Mon,Thu 23:00-01:00"`, or only the times for a daily window).
    public var description: String {
        let time = Self.clock(startMinute) + "-" + Self.clock(endMinute)
        if weekdays.count == 7 { return time }
        let names = Self.days.filter { weekdays.contains($0.weekday) }.map(\.name)
        return names.joined(separator: ",") + " " + time
    }

    private static func dayIndex(_ text: Substring) -> Int? {
        days.firstIndex { $0.name.lowercased() == text.lowercased() }
    }

    /// Minutes after midnight for "HH:MM" (00:00 … 24:00).
    private static func minutes(_ text: Substring) -> Int? {
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 2, fields[0].count == 2, fields[1].count == 2,
              fields.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let hour = Int(fields[0]), let minute = Int(fields[1]), minute < 60,
              hour < 24 || (hour == 24 && minute == 0)
        else { return nil }
        return hour * 60 + minute
    }

    private static func clock(_ minutes: Int) -> String {
        let hour = minutes / 60, minute = minutes % 60
        return (hour < 10 ? "0" : "") + "\(hour):" + (minute < 10 ? "0" : "") + "\(minute)"
    }
}
