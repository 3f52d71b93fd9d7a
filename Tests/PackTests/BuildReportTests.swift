import Foundation
import Testing
@testable import Artifact
@testable import Pack

/// `hotpatch-pack build`'s report: the JSON shape programs read (snake_case keys, every field
/// present, null where nothing was written) and the text people read.
@Suite struct BuildReportTests {
    static let report = BuildReport(
        targets: [BuildReport.Target(
            released: "/r/libfoo.so.1", buildId: "ab12", original: "/w/original/libfoo.so.1", patched: "/w/patched/libfoo.so.1",
            reproducible: true,
            changes: [GeneratedChange(symbol: "parse", object: "libfoo.so.1", kind: .changedFunction, reason: "its code changed"),
                      GeneratedChange(symbol: "loop", object: "libfoo.so.1", kind: .inlinedCaller, reason: "parse is inlined into it")],
            replacements: [BuildReport.Replacement(symbol: "parse", replacement: "parse.hotpatch")],
            references: [TargetSymbolReference(symbol: "table", offset: 0x4010)],
            patchObject: "hotpatches/B1-hp1/hotpatch-libfoo.so.1")],
        refusals: [], release: BuildReport.Release(channel: "ch", id: "B1-hp1", baseline: "B1", level: 1), workDirectory: nil)

    @Test func json_hasTheDocumentedShape() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(Self.report.json().utf8), options: .fragmentsAllowed) as? [String: Any])
        #expect(Set(object.keys) == ["targets", "refusals", "release", "work_directory"])
        #expect(object["work_directory"] is NSNull)
        let target = try #require((object["targets"] as? [[String: Any]])?.first)
        #expect(Set(target.keys) == ["released", "build_id", "original", "patched", "reproducible", "changes", "replacements",
                                     "references", "patch_object", "notes"])
        let kinds = (target["changes"] as? [[String: Any]])?.compactMap { $0["kind"] as? String }
        #expect(kinds == ["changed-function", "inlined-caller"])
        #expect((target["references"] as? [[String: Any]])?.first?["offset"] as? Int == 0x4010)
        #expect((object["release"] as? [String: Any])?["id"] as? String == "B1-hp1")
        // The decoder reads back what the encoder wrote.
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        #expect(try decoder.decode(BuildReport.self, from: Data(Self.report.json().utf8)) == Self.report)
    }

    @Test func text_saysReproducibleEachChangeAndTheRelease() {
        let text = Self.report.text()
        #expect(text.contains("reproducible build: the rebuild is byte-identical to the released object"))
        #expect(text.contains("changed-function: parse: its code changed"))
        #expect(text.contains("inlined-caller: loop: parse is inlined into it"))
        #expect(text.contains("patch object hotpatches/B1-hp1/hotpatch-libfoo.so.1: parse→parse.hotpatch"))
        #expect(text.contains("Added hotpatch B1-hp1 (baseline B1, level 1) to ch"))
        var refused = Self.report
        refused.release = nil
        refused.refusals = [GeneratedChange(symbol: "limit", object: "libfoo.so.1", kind: .refused, reason: "its initial value changed")]
        #expect(refused.text().contains("Refused: 1 change cannot be hotpatched, nothing was written to the channel:\n  libfoo.so.1: limit: its initial value changed"))
        #expect(!refused.text().contains("Added hotpatch"))
    }
}

extension BuildReportTests {
    @Test func json_ofARefusal_hasNullReleaseAndPatchObject() throws {
        var refused = Self.report
        refused.release = nil
        refused.targets[0].patchObject = nil
        let object = try #require(try JSONSerialization.jsonObject(with: Data(refused.json().utf8)) as? [String: Any])
        #expect(object["release"] is NSNull)
        #expect((object["targets"] as? [[String: Any]])?.first?["patch_object"] is NSNull)
    }
}
