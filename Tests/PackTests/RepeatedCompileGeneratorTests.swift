import Artifact
@testable import Pack
import Testing

/// A source file the build compiles more than once (libtool's PIC and non-PIC objects, a second
/// variant of the library built with other flags, as Debian's expat does): only the objects the
/// target linked are compared, so a change is carried once and the variant is not matched
/// against the released object.
@Suite(.serialized) struct RepeatedCompileGeneratorTests {
    static func library(limit: Int) -> String {
        """
        #ifdef WIDE
        #define SCALE 3
        #else
        #define SCALE 1
        #endif
        int clamp(int x) { if (x > \(limit)) return \(limit); return x * SCALE + 1; }
        int twice(int x) { return clamp(x) + clamp(x + 1); }

        """
    }

    @Test func sameFileCompiledAgainAndAsAVariant_onlyTheLinkedObjectIsPatched_andTheLiveProcessRunsTheFix() throws {
        let fixture = try GeneratorCase(original: Self.library(limit: 100), patched: Self.library(limit: 10))
        var builds = fixture.builds
        // The same file compiled twice more in each build, into objects the library does not link.
        for (folder, limit) in [("orig", 100), ("patched", 10)] {
            try Shell.sh("mkdir -p \(folder)/extra", in: fixture.path)
            try fixture.scratch.write("\(folder)/extra/lib.c", Self.library(limit: limit))
            try Shell.sh("cc -c -O2 -fPIC -ffunction-sections -fdata-sections lib.c -o copy.o && cc -c -O2 -fPIC -DWIDE -ffunction-sections -fdata-sections lib.c -o wide.o",
                         in: "\(fixture.path)/\(folder)/extra")
        }
        for object in ["extra/copy.o", "extra/wide.o"] {
            builds.original.compiledObjects.append(CompiledObject(objectPath: "\(fixture.path)/orig/\(object)", sourcePath: "\(fixture.path)/orig/extra/lib.c", relativePath: object))
            builds.patched.compiledObjects.append(CompiledObject(objectPath: "\(fixture.path)/patched/\(object)", sourcePath: "\(fixture.path)/patched/extra/lib.c", relativePath: object))
        }
        let patch: GeneratedPatch
        do { patch = try generatePatch(for: builds) } catch {
            Issue.record("generation refused: \(error)")
            throw error
        }
        #expect(patch.changes.filter { $0.symbol == "clamp" }.count == 1, "\(patch.changes)")
        #expect(patch.replacements.map(\.symbol) == ["clamp"])
        let program = try fixture.program(calling: "clamp(50)", declaring: "int clamp(int x)")
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=51", after: "value=10")
    }
}
