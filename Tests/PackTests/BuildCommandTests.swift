import Foundation
import Testing
@testable import Artifact

/// `hotpatch-pack build` as a publisher runs it: its help, and each bad input (a malformed diff, a
/// diff that does not apply, a failing build, a target the build does not make, a work directory
/// that exists) refused with a clear error and nothing written to the channel.
@Suite struct BuildCommandTests {
    /// A channel with baseline B1 and the driver tests' make project, built as released.
    func prepare() throws -> Scratch {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.write("source/Makefile", BuildDriverTests.makefile)
        try scratch.write("source/demo.c", BuildDriverTests.demo)
        try scratch.write("source/util.c", BuildDriverTests.util)
        try scratch.write("fix.diff", BuildDriverTests.fix)
        try Shell.sh("cp -a source released-build && make -s -C released-build && mkdir released && cp released-build/libdemo.so released/", in: scratch.path)
        return scratch
    }

    /// Runs `hotpatch-pack build` with the usual options, `overrides` replacing or adding some.
    func build(_ scratch: Scratch, _ overrides: [String: String] = [:]) throws -> ProgramRun {
        var options = ["--channel": "channel", "--id": "B1-hp1", "--baseline": "B1", "--level": "1", "--source": "source",
                       "--diff": "fix.diff", "--build": "make", "--target": "released/libdemo.so"]
        options.merge(overrides) { $1 }
        return try Pack.run(["build"] + options.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }, in: scratch.path)
    }

    @Test func help_documentsTheWrapperTheCCRuleAndTheTargetRule() throws {
        let scratch = try Scratch()
        let help = try scratch.pack("build", "--help").stdout.replacingOccurrences(of: "\n", with: " ")
            .split(separator: " ").joined(separator: " ")
        for phrase in ["-ffunction-sections -fdata-sections", #"make CC="$CC" CXX="$CXX""#, "DT_SONAME",
                       "reproducible build", "--keep-work", "--json", "Example:", "patch -p1"] {
            #expect(help.contains(phrase), "help lacks \(phrase)")
        }
    }

    @Test func build_boundsCheckDiff_writesAHotpatchReleaseAndReportsItAsJSON() throws {
        let scratch = try prepare()
        let result = try Pack.run(["build", "--channel", "channel", "--id", "B1-hp1", "--baseline", "B1", "--level", "1",
                                   "--source", "source", "--diff", "fix.diff", "--build", "make",
                                   "--target", "released/libdemo.so", "--json"], in: scratch.path)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect((report?["refusals"] as? [Any])?.isEmpty == true && (report?["release"] as? [String: Any])?["id"] as? String == "B1-hp1", "stdout: \(result.stdout)")
        let index = try String(contentsOfFile: scratch.path + "/channel/index.json", encoding: .utf8)
        #expect(index.contains("\"B1-hp1\"") && index.contains("parse.hotpatch"), "\(index)")
        #expect(FileManager.default.fileExists(atPath: scratch.path + "/channel/hotpatches/B1-hp1/hotpatch-libdemo.so"))
    }

    @Test func build_dataOnlyDiff_isRefusedNamingTheVariableInTheJSONReportAndWritesNothing() throws {
        let scratch = try prepare()
        try scratch.write("data.diff", """
            --- a/util.c
            +++ b/util.c
            @@ -1 +1,2 @@
            +int limit = 64;
             int scale(int x) { return x * 3; }

            """)
        let before = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/index.json"))
        let result = try Pack.run(["build", "--channel", "channel", "--id", "B1-hp1", "--baseline", "B1", "--level", "1",
                                   "--source", "source", "--diff", "data.diff", "--build", "make",
                                   "--target", "released/libdemo.so", "--json"], in: scratch.path)
        #expect(result.status != 0)
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let refusals = report?["refusals"] as? [[String: Any]] ?? []
        #expect(refusals.contains { ($0["symbol"] as? String) == "limit" }, "stdout: \(result.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/index.json")) == before)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/hotpatches"))
    }

    @Test(arguments: [
        (["--diff": "bad.diff"], "Malformed diff bad.diff, line 3: malformed hunk header"),
        (["--diff": "stale.diff"], "--diff stale.diff does not apply to the source: demo.c: hunk #1"),
        (["--build": "echo compiler exploded; exit 2", "--keep-work": "work"], "failed with exit status 2"),
        (["--target": "released/libmissing.so"], "has no ELF file named libmissing.so"),
        (["--source": "fix.diff"], "--source fix.diff is not a directory"),
        (["--keep-work": "source"], "--keep-work source already exists and is not an empty directory"),
        (["--baseline": "B9"], "Baseline 'B9' is not in"),
    ])
    func build_badInput_failsClearlyAndWritesNothing(overrides: [String: String], expected: String) throws {
        let scratch = try prepare()
        try scratch.write("bad.diff", "--- a/demo.c\n+++ b/demo.c\n@@ -1 +1\n")
        try scratch.write("stale.diff", BuildDriverTests.fix.replacingOccurrences(of: " int sum = 0;", with: " long sum = 0;"))
        try Shell.sh("cc -shared -fPIC -Wl,--build-id -o released/libmissing.so source/util.c", in: scratch.path)
        let before = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/index.json"))
        let result = try build(scratch, overrides)
        #expect(result.status != 0)
        #expect(result.stderr.contains(expected), "stderr: \(result.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/index.json")) == before)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/hotpatches"))
        #expect(!(try String(contentsOfFile: scratch.path + "/source/demo.c", encoding: .utf8)).contains("length > 64"))
    }
}
