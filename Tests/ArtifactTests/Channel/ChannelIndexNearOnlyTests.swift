import Foundation
import Testing
@testable import Artifact

/// The `near_only` flag of a redirection: `hotpatch-pack` found code branching into the bytes only
/// the far jump covers. Absent means false, and a redirection without it is written as before.
@Suite struct ChannelIndexNearOnlyTests {
    /// ChannelIndexPaddingTests' index for a 16-byte function, its redirection given `field` (raw JSON).
    static func index(nearOnly field: String?) -> String {
        let text = ChannelIndexPaddingTests.index(size: 16, padding: nil)
        guard let field else { return text }
        return text.replacingOccurrences(of: #""replacement": "tiny_fixed""#,
                                         with: #""replacement": "tiny_fixed", "near_only": \#(field)"#)
    }

    @Test func parse_whenNearOnlyIsTrue_readsItAndRoundTrips() throws {
        let text = Self.index(nearOnly: "true")
        #expect(text.contains("near_only"))
        let redirection = try #require(try ChannelIndexPaddingTests.redirection(text))
        #expect(redirection.nearOnly)
        #expect(redirection.nearJumpNeed == .branchTargetUnderFarJump)
        let index = try ChannelIndex.parse(Array(text.utf8), path: "index.json")
        let written = String(decoding: index.encoded(), as: UTF8.self)
        #expect(written.contains(#""near_only": true"#), "\(written)")
        #expect(try ChannelIndex.parse(index.encoded(), path: "again") == index)
    }

    @Test func parse_whenNearOnlyIsAbsent_isFalseAndNotWritten() throws {
        let text = Self.index(nearOnly: nil)
        let redirection = try #require(try ChannelIndexPaddingTests.redirection(text))
        #expect(!redirection.nearOnly)
        #expect(redirection.nearJumpNeed == nil)
        let index = try ChannelIndex.parse(Array(text.utf8), path: "index.json")
        #expect(!String(decoding: index.encoded(), as: UTF8.self).contains("near_only"))
    }

    @Test func parse_whenNearOnlyIsFalse_readsFalseAndLeavesItOut() throws {
        let text = Self.index(nearOnly: "false")
        #expect(try ChannelIndexPaddingTests.redirection(text)?.nearOnly == false)
        let index = try ChannelIndex.parse(Array(text.utf8), path: "index.json")
        #expect(!String(decoding: index.encoded(), as: UTF8.self).contains("near_only"))
    }

    @Test func parse_whenNearOnlyIsNotABoolean_isRefused() throws {
        for value in ["1", #""true""#, "null"] {
            let refusal = ChannelIndexPaddingTests.refusal(Self.index(nearOnly: value))
            #expect(refusal?.contains("near_only") == true && refusal?.contains("true or false") == true, "\(value): \(refusal ?? "accepted")")
        }
    }

    @Test func codable_roundTripsNearOnlyAndWritesItOnlyWhenSet() throws {
        let flagged = FunctionRedirection(symbol: "loop", offset: 0x1140, size: 32, sha256: String(repeating: "cd", count: 32),
                                          replacement: "loop_fixed", nearOnly: true)
        let json = String(decoding: try JSONEncoder().encode(flagged), as: UTF8.self)
        #expect(json.contains(#""near_only":true"#), "\(json)")
        #expect(try JSONDecoder().decode(FunctionRedirection.self, from: Data(json.utf8)) == flagged)

        var plain = flagged
        plain.nearOnly = false
        let plainJSON = String(decoding: try JSONEncoder().encode(plain), as: UTF8.self)
        #expect(!plainJSON.contains("near_only"), "\(plainJSON)")
        #expect(try JSONDecoder().decode(FunctionRedirection.self, from: Data(plainJSON.utf8)) == plain)
    }

    @Test func codable_decodesAManifestWrittenBeforeTheFlag() throws {
        // As an older hotpatch-pack wrote it: no near_only, no padding.
        let old = #"{"symbol": "loop", "offset": 4416, "size": 32, "sha256": "\#(String(repeating: "cd", count: 32))", "replacement": "loop_fixed"}"#
        let redirection = try JSONDecoder().decode(FunctionRedirection.self, from: Data(old.utf8))
        #expect(!redirection.nearOnly && redirection.padding == 0 && redirection.offset == 4416)
    }

    @Test func nearJumpNeed_namesWhyOnlyTheNearJumpFits() {
        func redirection(size: UInt64, padding: UInt64 = 0, nearOnly: Bool = false) -> FunctionRedirection {
            FunctionRedirection(symbol: "f", offset: 0x1000, size: size, sha256: "", replacement: "g", padding: padding, nearOnly: nearOnly)
        }
        #expect(redirection(size: 14).nearJumpNeed == nil)
        #expect(redirection(size: 13).nearJumpNeed == .shorterThanFarJump)
        #expect(redirection(size: 3, padding: 5).nearJumpNeed == .entryHop)
        #expect(redirection(size: 32, nearOnly: true).nearJumpNeed == .branchTargetUnderFarJump)
    }
}
