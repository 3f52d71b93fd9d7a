import AgentCore
import Foundation
import Testing

/// A Gregorian calendar in UTC, so tests do not depend on the machine's time zone.
private let utc: Calendar = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar
}()

/// 2024-06-03 is a Monday.
private func at(_ day: Int, _ hour: Int, _ minute: Int) -> Date {
    utc.date(from: DateComponents(year: 2024, month: 6, day: day, hour: hour, minute: minute))!
}

@Test func parse_acceptsDailyDaysListsAndRanges_andPrintsThemCanonically() {
    #expect(MaintenanceWindow.parse("02:00-04:00")?.description == "02:00-04:00")
    #expect(MaintenanceWindow.parse("Sun 02:00-04:00")?.description == "Sun 02:00-04:00")
    #expect(MaintenanceWindow.parse("thu,Mon 23:00-01:00")?.description == "Mon,Thu 23:00-01:00")
    #expect(MaintenanceWindow.parse("Mon-Fri 22:00-24:00")?.description == "Mon,Tue,Wed,Thu,Fri 22:00-24:00")
    #expect(MaintenanceWindow.parse("Sat-Sun 00:00-06:00")?.description == "Sat,Sun 00:00-06:00")
    #expect(MaintenanceWindow.parse("Mon,Tue,Wed,Thu,Fri,Sat,Sun 01:00-02:00")?.description == "01:00-02:00")
}

@Test func parse_refusesMalformedWindows() {
    for text in ["", "2:00-4:00", "02:00", "02:00-02:00", "25:00-01:00", "02:60-03:00", "Sun", "Sunday 02:00-04:00",
                 "Sun  Mon 02:00-04:00", "Mon,,Tue 02:00-03:00", "24:00-01:00", "02:00-00:00x"] {
        #expect(MaintenanceWindow.parse(text) == nil, "accepted \(text)")
    }
}

@Test func contains_dailyWindow_isHalfOpen() throws {
    let window = try #require(MaintenanceWindow.parse("02:00-04:00"))
    #expect(!window.contains(at(3, 1, 59), calendar: utc))
    #expect(window.contains(at(3, 2, 0), calendar: utc))
    #expect(window.contains(at(5, 3, 59), calendar: utc))
    #expect(!window.contains(at(3, 4, 0), calendar: utc))
}

@Test func contains_windowWrappingMidnight_belongsToTheDayItStarts() throws {
    let window = try #require(MaintenanceWindow.parse("Mon,Thu 23:00-01:00"))
    #expect(window.contains(at(3, 23, 30), calendar: utc))   // Monday evening
    #expect(window.contains(at(4, 0, 30), calendar: utc))    // Tuesday early morning, Monday's window
    #expect(!window.contains(at(3, 0, 30), calendar: utc))   // Monday early morning: Sunday has no window
    #expect(!window.contains(at(4, 23, 30), calendar: utc))  // Tuesday evening
    #expect(window.contains(at(7, 0, 59), calendar: utc))    // Friday early morning, Thursday's window
    #expect(!window.contains(at(7, 1, 0), calendar: utc))
}

@Test func contains_sundayWindowWrapping_reachesMondayMorning() throws {
    let window = try #require(MaintenanceWindow.parse("Sun 22:00-02:00"))
    #expect(window.contains(at(9, 23, 0), calendar: utc))    // Sunday 9 June
    #expect(window.contains(at(10, 1, 0), calendar: utc))    // Monday 10 June
    #expect(!window.contains(at(10, 23, 0), calendar: utc))
}
