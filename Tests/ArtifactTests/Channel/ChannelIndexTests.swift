import Testing
@testable import Artifact

@Suite struct ChannelIndexTests {
    func parse(_ text: String) throws(ChannelRefusal) -> ChannelIndex {
        try ChannelIndex.parse(Array(text.utf8), path: "index.json")
    }

    func refusal(_ text: String) -> ChannelRefusal? {
        do { _ = try parse(text); return nil } catch { return error }
    }

    let minimal = #"{"format": 1, "version": 3, "expires": "2030-01-01T00:00:00Z", "releases": []}"#

    @Test func parse_whenIndexIsMinimal_readsVersionAndExpiry() throws {
        let index = try parse(minimal)
        #expect(index.version == 3)
        #expect(index.expiresSeconds == 1_893_456_000)
    }

    @Test func parse_ofEncodedIndex_roundTrips() throws {
        let fixture = try ChannelFixture()
        #expect(try ChannelIndex.parse(fixture.index.encoded(), path: "x") == fixture.index)
    }

    @Test func parse_whenKeyIsDuplicated_refusesAsMalformed() {
        guard case let .malformedIndex(_, reason) = refusal(#"{"format": 1, "format": 1}"#) else { Issue.record("accepted"); return }
        #expect(reason.contains("duplicate key"))
    }

    @Test func parse_whenNestingIsDeep_refusesWithoutRecursingFurther() {
        let deep = String(repeating: "[", count: 100_000)
        guard case let .malformedIndex(_, reason) = refusal(deep) else { Issue.record("accepted"); return }
        #expect(reason.contains("nesting"))
    }

    @Test func parse_whenStringHasLoneSurrogateOrInvalidUTF8_refuses() {
        #expect(refusal(#"{"format": 1, "x": "\ud800"}"#) != nil)
        var bytes = Array(#"{"a": "x"}"#.utf8)
        bytes[7] = 0xff
        #expect(throws: ChannelRefusal.self) { try ChannelIndex.parse(bytes, path: "i") }
    }

    @Test func parse_whenContentFollowsDocument_refuses() {
        #expect(refusal(minimal + " {}") != nil)
    }

    @Test func parse_whenFormatIsNewer_refusesAsUnsupportedFormat() {
        #expect(refusal(minimal.replacingOccurrences(of: "\"format\": 1", with: "\"format\": 2"))
                == .unsupportedFormat(path: "index.json", format: 2))
    }

    @Test func parse_whenFieldIsMissing_refusesNamingIt() {
        #expect(refusal(#"{"format": 1, "version": 3, "releases": []}"#) == .missingField(path: "index.json", field: "expires"))
    }

    @Test func parse_whenVersionIsFractional_refusesAsWrongType() {
        #expect(refusal(minimal.replacingOccurrences(of: "3", with: "3.0"))
                == .wrongFieldType(path: "index.json", field: "version", expected: "an integer"))
    }

    @Test func parse_whenExpiresIsNotRFC3339_refuses() {
        guard case .invalidValue(_, "expires", _) = refusal(minimal.replacingOccurrences(of: "2030-01-01T00:00:00Z", with: "tomorrow"))
        else { Issue.record("accepted"); return }
    }

    @Test func json_printsWhatItParses() throws {
        let value = try ChannelJSON.parse(Array(#"{"a": [1, -2.5e3, true, null, "q\"\\\n\u0001é😀"], "b": {}}"#.utf8))
        #expect(try ChannelJSON.parse(ChannelJSON.print(value)) == value)
    }

    @Test func rfc3339_parsesOffsetsAndFractionsAndFormatsUTC() {
        #expect(RFC3339.parse("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.parse("1970-01-01T01:00:00+01:00") == 0)
        #expect(RFC3339.parse("2024-02-29T12:00:00.5Z") == 1_709_208_000.5)
        #expect(RFC3339.parse("2023-02-29T12:00:00Z") == nil)
        #expect(RFC3339.parse("2024-01-01 00:00:00Z") == nil)
        #expect(RFC3339.format(1_709_208_000) == "2024-02-29T12:00:00Z")
    }

    @Test func paths_refuseAbsoluteDotDotAndUnnormalised() {
        #expect(ChannelPath.problemWithRelative("a/b.so") == nil)
        #expect(ChannelPath.problemWithRelative("/a") == "is absolute")
        #expect(ChannelPath.problemWithRelative("a/../b") == "has '..'")
        #expect(ChannelPath.problemWithRelative("a//b") != nil)
        #expect(ChannelPath.problemWithRelative("./a") != nil)
        #expect(ChannelPath.problemWithDestination("/etc/x") == nil)
        #expect(ChannelPath.problemWithDestination("/") != nil)
        #expect(ChannelPath.safeExtension(of: "x/libfix.so") == ".so")
        #expect(ChannelPath.safeExtension(of: "x/tool") == "")
    }

    @Test func durations_acceptUnitsAndBareSeconds() {
        #expect(DurationText.seconds("90s") == 90)
        #expect(DurationText.seconds("5m") == 300)
        #expect(DurationText.seconds("2h") == 7200)
        #expect(DurationText.seconds("7d") == 604_800)
        #expect(DurationText.seconds("45") == 45)
        #expect(DurationText.seconds("1w") == nil)
        #expect(DurationText.seconds("-5s") == nil)
        #expect(DurationText.seconds("") == nil)
    }
}
