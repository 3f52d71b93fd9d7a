import Foundation
import Testing
@testable import Artifact

/// A hotpatch's `refs` name a thread-local by an optional `kind`; address references are written
/// as before, so indexes without the field keep their meaning.
@Suite struct ChannelReferenceKindTests {
    /// The fixture's index with its one target's refs replaced by `references`.
    static func index(_ fixture: ChannelFixture, references: [TargetSymbolReference]) -> ChannelIndex {
        var index = fixture.index
        index.releases = index.releases.map { release in
            guard case let .hotpatch(id, baseline, level, description, cves, targets, kernel, files) = release else { return release }
            return .hotpatch(id: id, baseline: baseline, level: level, description: description, cves: cves,
                             targets: targets.map { target in
                                 var changed = target
                                 changed.references = references
                                 return changed
                             }, kernel: kernel, files: files)
        }
        return index
    }

    @Test func encoded_withThreadLocalReference_writesItsKindAndParsesBack() throws {
        let fixture = try ChannelFixture()
        let references = [TargetSymbolReference(symbol: "table", offset: 0x4010),
                          TargetSymbolReference(symbol: "per_thread", offset: 0x8, kind: .threadLocal)]
        let index = Self.index(fixture, references: references)
        let text = String(decoding: index.encoded(), as: UTF8.self)
        #expect(text.components(separatedBy: "\"kind\": \"tls\"").count == 2, "\(text)")
        let parsed = try ChannelIndex.parse(index.encoded(), path: "index.json")
        #expect(parsed == index)
    }

    @Test func parse_whenReferenceHasNoKind_readsItAsAnAddress() throws {
        let fixture = try ChannelFixture()
        #expect(!fixture.indexText.contains("\"tls\""))
        let parsed = try ChannelIndex.parse(fixture.index.encoded(), path: "index.json")
        guard case let .hotpatch(_, _, _, _, _, targets, _, _)? = parsed.releases.first(where: {
            if case .hotpatch = $0 { return true } else { return false }
        }) else {
            Issue.record("no hotpatch in \(parsed)")
            return
        }
        #expect(targets.first?.references == [TargetSymbolReference(symbol: "table", offset: 0x4010, kind: .address)])
    }

    @Test func parse_whenKindIsUnknown_refusesNamingTheField() throws {
        let fixture = try ChannelFixture()
        let index = Self.index(fixture, references: [TargetSymbolReference(symbol: "per_thread", offset: 0x8, kind: .threadLocal)])
        let edited = String(decoding: index.encoded(), as: UTF8.self).replacingOccurrences(of: "\"tls\"", with: "\"thread\"")
        do {
            _ = try ChannelIndex.parse(Array(edited.utf8), path: "index.json")
            Issue.record("accepted an unknown kind")
        } catch let .invalidValue(_, field, reason) {
            #expect(field.hasSuffix("refs[0].kind"), "\(field)")
            #expect(reason.contains("'thread'"), "\(reason)")
        } catch {
            Issue.record("unexpected refusal \(error)")
        }
    }
}
