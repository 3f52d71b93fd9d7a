import Testing
@testable import Artifact

/// The `padding` field of a redirection: the entry hop of a function shorter than the near jump.
@Suite struct ChannelIndexPaddingTests {
    static func index(size: Int, padding: Int?, offset: Int = 0x1140) -> String {
        let paddingField = padding.map { #", "padding": \#($0)"# } ?? ""
        return #"""
        {"format": 1, "version": 1, "expires": "2030-01-01T00:00:00Z", "releases": [
          {"kind": "baseline", "id": "B1", "planned": true, "files": []},
          {"kind": "hotpatch", "id": "hp1", "baseline": "B1", "level": 1, "targets": [
            {"build_id": "0123456789abcdef0123456789abcdef01234567", "path_hint": "/usr/bin/demo",
             "patch_object": {"path": "hotpatches/hp1/fix.so", "sha256": "\#(String(repeating: "ab", count: 32))", "length": 10},
             "redirections": [{"symbol": "tiny", "offset": \#(offset), "size": \#(size),
                               "sha256": "\#(String(repeating: "cd", count: 32))", "replacement": "tiny_fixed"\#(paddingField)}]}]}]}
        """#
    }

    static func redirection(_ text: String) throws(ChannelRefusal) -> FunctionRedirection? {
        let index = try ChannelIndex.parse(Array(text.utf8), path: "index.json")
        for case let .hotpatch(_, _, _, _, _, targets, _, _) in index.releases { return targets.first?.redirections.first }
        return nil
    }

    static func refusal(_ text: String) -> String? {
        do { _ = try redirection(text); return nil } catch { return "\(error)" }
    }

    @Test func parse_whenShortFunctionHasPadding_readsItAndRoundTrips() throws {
        let text = Self.index(size: 3, padding: 5)
        let redirection = try #require(try Self.redirection(text))
        #expect(redirection.padding == 5 && redirection.size == 3)
        let index = try ChannelIndex.parse(Array(text.utf8), path: "index.json")
        #expect(try ChannelIndex.parse(index.encoded(), path: "again") == index)
        #expect(String(decoding: index.encoded(), as: UTF8.self).contains(#""padding""#))
    }

    @Test func parse_whenPaddingIsAbsent_isZeroAndNotWritten() throws {
        let text = Self.index(size: 16, padding: nil)
        #expect(try Self.redirection(text)?.padding == 0)
        let index = try ChannelIndex.parse(Array(text.utf8), path: "index.json")
        #expect(!String(decoding: index.encoded(), as: UTF8.self).contains("padding"))
    }

    @Test func parse_refusesPaddingThatCannotBeRight() throws {
        #expect(Self.refusal(Self.index(size: 3, padding: nil))?.contains("cannot hold a 5-byte jump") == true)
        #expect(Self.refusal(Self.index(size: 3, padding: 4))?.contains("only 0 or 5") == true)
        #expect(Self.refusal(Self.index(size: 16, padding: 5))?.contains("padding is for functions of 2 to 4 bytes only") == true)
        #expect(Self.refusal(Self.index(size: 1, padding: 5))?.contains("padding is for functions of 2 to 4 bytes only") == true)
        #expect(Self.refusal(Self.index(size: 3, padding: 5, offset: 2))?.contains("lie before the object") == true)
    }
}
