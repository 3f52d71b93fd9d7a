import Testing
@testable import Artifact

/// One parser for every duration the product reads, bounded so that every consumer can hold it.
@Suite struct DurationTextTests {
    @Test func parse_fromOneSecondTo3650Days_inEveryForm() throws {
        for (text, seconds) in [("1", 1), ("1s", 1), ("90m", 5400), ("24h", 86_400), ("7d", 604_800), ("3650d", 315_360_000),
                                ("315360000", 315_360_000)] {
            #expect(try DurationText.parse(text) == seconds, "\(text)")
        }
    }

    @Test func parse_zeroNegativeAndUnrepresentable_areOutOfRange() {
        for text in ["0", "0s", "-1", "-1s", "9223372036854775807", "9223372036854775807s", "9223372036854775807d",
                     "99999999999999999999999", "3651d", "315360001"] {
            #expect(throws: DurationText.Problem.outOfRange, "\(text)") { try DurationText.parse(text) }
        }
    }

    @Test func parse_textThatIsNoDuration_isNotADuration() {
        for text in ["1e30", "", "s", "-", "5 m", "1w", "0x10", "+5", "1.5h", "١"] {
            #expect(throws: DurationText.Problem.notADuration, "\(text)") { try DurationText.parse(text) }
        }
    }

    @Test func checked_boundsTOMLIntegers() throws {
        #expect(try DurationText.checked(1) == 1)
        #expect(try DurationText.checked(DurationText.maximumSeconds) == DurationText.maximumSeconds)
        for seconds in [0, -1, Int.min, Int.max, DurationText.maximumSeconds + 1] {
            #expect(throws: DurationText.Problem.outOfRange) { try DurationText.checked(seconds) }
        }
    }

    @Test func everyAcceptedDuration_fitsEveryConsumer() {
        let longest = DurationText.maximumSeconds
        #expect(Duration.seconds(Double(longest)) == .seconds(longest), "Task.sleep takes it")
        #expect(UInt64(longest).multipliedReportingOverflow(by: 1_000_000).overflow == false, "systemd's microseconds")
        #expect(Int64(longest).multipliedReportingOverflow(by: 1_000_000_000).overflow == false, "nanoseconds")
    }
}
