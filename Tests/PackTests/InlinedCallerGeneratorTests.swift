import Foundation
@testable import Pack
import Testing

/// `hotpatch-pack build`'s generator and the DWARF inline map: every function a changed function is
/// inlined into is replaced, also when its own code came out the same; one that cannot be patched
/// is refused naming both; a build without -g is noted in the report.
@Suite(.serialized) struct InlinedCallerGeneratorTests {
    /// A `static inline` helper with an out-of-line copy (its address is taken) inlined into
    /// `doubled` (twice, with `mode` 0), so `doubled` does not change when only the other branch
    /// of the helper does; `doubled` is 12 bytes, long enough for the redirection's jump.
    static func library(modeZero: String = "x * 2", otherwise: String = "x + 1", doubledAdds: String = "") -> String {
        """
        static inline int scale(int x, int mode) { if (mode == 0) return \(modeZero); return \(otherwise); }
        int (*volatile scale_pointer)(int, int) = scale;
        __attribute__((noinline)) int doubled(int x) { return scale(x, 0) + scale(x >> 3, 0) * 7\(doubledAdds); }
        int through_pointer(int x, int mode) { return scale_pointer(x, mode); }

        """
    }

    static let declarations = "int doubled(int x); int through_pointer(int x, int mode)"

    @Test func helperChangedOnlyOutOfLine_itsUnchangedInlinedCallerIsReplacedToo_andTheLiveProcessRunsTheFix() throws {
        let fixture = try GeneratorCase(files: ["lib.c": (Self.library(), Self.library(otherwise: "x + 3"))], flags: "-g")
        let patch = try fixture.generate()
        let caller = try #require(patch.changes.first { $0.symbol == "doubled" })
        #expect(caller.kind == .inlinedCaller)
        #expect(caller.reason.contains("changed function scale is inlined into it"), "\(caller.reason)")
        #expect(patch.changes.contains { $0.symbol == "scale" && $0.kind == .changedFunction })
        #expect(Set(patch.replacements.map(\.symbol)) == ["doubled", "scale"])
        #expect(patch.notes.isEmpty)
        let program = try fixture.program(calling: "through_pointer(5, 1) * 1000 + doubled(5)", declaring: Self.declarations)
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=6010", after: "value=8010")
    }

    @Test func callerWhoseOwnCodeChanged_isLabelledWithTheInlinedFunction() throws {
        let fixture = try GeneratorCase(files: ["lib.c": (Self.library(), Self.library(modeZero: "x * 4"))], flags: "-g")
        let patch = try fixture.generate()
        let caller = try #require(patch.changes.first { $0.symbol == "doubled" })
        #expect(caller.kind == .changedFunction)
        #expect(caller.reason.contains("its code changed (lib.o), and changed function scale is inlined into it"), "\(caller.reason)")
        let program = try fixture.program(calling: "doubled(5)", declaring: Self.declarations)
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=10", after: "value=20")
    }

    @Test func inlinedCallerWhoseReleasedBytesDiffer_isRefused_namingTheCallerAndTheInlinedFunction() throws {
        let fixture = try GeneratorCase(files: ["lib.c": (Self.library(), Self.library(otherwise: "x + 3"))],
                                        released: ["lib.c": Self.library(doubledAdds: " + 1")], flags: "-g")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("doubled: function doubled (lib.o; changed function scale is inlined into it): its released bytes"), "\(refusal)")
        #expect(!refusal.contains("scale: changed function scale"), "\(refusal)")
    }

    @Test func buildWithoutDWARF_isNotedInThePatch_andTheByteComparisonGoesOn() throws {
        let fixture = try GeneratorCase(files: ["lib.c": (Self.library(), Self.library(modeZero: "x * 4"))])
        let patch = try fixture.generate()
        #expect(patch.changes.first { $0.symbol == "doubled" }?.kind == .changedFunction)
        #expect(patch.notes.count == 1)
        #expect(patch.notes.first?.contains("no DWARF in lib.o (built without -g)") == true, "\(patch.notes)")
    }

    @Test func buildCommand_reportsTheInlinedCallerInItsJSON() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.write("source/Makefile", """
            CFLAGS ?= -O2 -g -fPIC
            libdemo.so: lib.c
            \t$(CC) $(CFLAGS) -c lib.c -o lib.o
            \t$(CC) -shared -Wl,--build-id -o libdemo.so lib.o

            """)
        try scratch.write("source/lib.c", Self.library())
        try scratch.write("fix.diff", """
            --- a/lib.c
            +++ b/lib.c
            @@ -1 +1 @@
            -\(Self.library().split(separator: "\n")[0])
            +\(Self.library(otherwise: "x + 3").split(separator: "\n")[0])

            """)
        try Shell.sh("cp -a source released-build && make -s -C released-build && mkdir released && cp released-build/libdemo.so released/", in: scratch.path)
        let result = try Pack.run(["build", "--channel", "channel", "--id", "B1-hp1", "--baseline", "B1", "--level", "1",
                                   "--source", "source", "--diff", "fix.diff", "--build", "make",
                                   "--target", "released/libdemo.so", "--json"], in: scratch.path)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let target = try #require((report["targets"] as? [[String: Any]])?.first)
        let changes = target["changes"] as? [[String: Any]] ?? []
        #expect(changes.contains { $0["symbol"] as? String == "doubled" && $0["kind"] as? String == "inlined-caller" }, "\(result.stdout)")
        #expect((target["notes"] as? [String])?.isEmpty == true, "\(result.stdout)")
        let index = try String(contentsOfFile: scratch.path + "/channel/index.json", encoding: .utf8)
        #expect(index.contains("doubled.hotpatch"), "\(index)")
    }
}
