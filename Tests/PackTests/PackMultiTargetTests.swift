import Foundation
import Testing
@testable import Artifact

/// `hotpatch-pack hotpatch` with several target groups in one release, through the real binary.
@Suite struct PackMultiTargetTests {
    /// `target`, `target.stripped` + `target.debug`, `libdemo.so`, the target's patch object under
    /// two names (`fix.so`, `other/fix.so`), and the library's (`fix-lib.so`, which needs only its
    /// own code: the target's `counter` is not the library's to give), with channel and baseline B1.
    func prepare() throws -> Scratch {
        let scratch = try PackHotpatchTests().prepare()
        try scratch.write("fix-lib.c", "int parse_fixed(int x) { return x * 7 + 2; }\n")
        try Shell.sh("cc -shared -fPIC -O1 -Wl,--build-id -o fix-lib.so fix-lib.c && mkdir other && cp fix.so other/fix.so",
                     in: scratch.path)
        return scratch
    }

    private static let start = ["hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1"]
    private static let groupOfTarget = ["--target", "target", "--patch", "fix.so", "--replace", "parse=parse_fixed", "--ref", "counter"]
    private static let groupOfLibrary = ["--target", "libdemo.so", "--patch", "fix-lib.so", "--replace", "lib_fn=parse_fixed",
                                         "--path-hint", "/usr/lib/libdemo.so"]

    /// Runs `hotpatch-pack` with `arguments`, expecting a refusal whose message contains `message`,
    /// and checks that nothing was written: the index still holds only B1, and no release folder.
    private func expectRefused(_ arguments: [String], saying message: String, in scratch: Scratch) throws {
        let result = try Pack.run(arguments, in: scratch.path)
        #expect(result.status != 0, "\(arguments)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(try scratch.index().releases.map(\.id) == ["B1"])
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/hotpatches/hp1"))
    }

    @Test func twoGroups_writeOneReleaseWithATargetForEachObject_eachWithItsOwnOptions() throws {
        let scratch = try prepare()
        let result = try Pack.run(Self.start + Self.groupOfTarget + Self.groupOfLibrary, in: scratch.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("for 2 objects"), "\(result.stdout)")

        let hotpatch = try PackHotpatchTests().verifiedHotpatch(scratch)
        let target = try PackHotpatchTests().readelfFacts("parse", in: "target", bytesFrom: "target", scratch: scratch)
        let library = try PackHotpatchTests().readelfFacts("lib_fn", in: "libdemo.so", bytesFrom: "libdemo.so", scratch: scratch)
        #expect(hotpatch.targets.map(\.buildID.description) == [target.buildID, library.buildID])
        #expect(hotpatch.targets.map { $0.redirections.map(\.symbol) } == [["parse"], ["lib_fn"]])
        #expect(hotpatch.targets[1].redirections.first?.sha256 == library.sha256)
        #expect(hotpatch.targets.map { $0.references.map(\.symbol) } == [["counter"], []])
        #expect(hotpatch.targets[0].pathHint == scratch.path + "/target")
        #expect(hotpatch.targets[1].pathHint == "/usr/lib/libdemo.so")
        let files = try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/channel/hotpatches/hp1").sorted()
        #expect(files == ["fix-lib.so", "fix.so"])
    }

    @Test func singleTarget_takesItsOptionsInAnyOrder_asBefore() throws {
        let scratch = try prepare()
        let result = try Pack.run(Self.start + ["--patch", "fix.so", "--ref", "counter", "--replace", "parse=parse_fixed", "--target", "target"],
                                  in: scratch.path)
        #expect(result.status == 0, "\(result.stderr)")
        let hotpatch = try PackHotpatchTests().verifiedHotpatch(scratch)
        #expect(hotpatch.targets.map { $0.redirections.map(\.symbol) } == [["parse"]])
    }

    @Test func optionsWrittenWithEquals_belongToTheirGroup() throws {
        let scratch = try prepare()
        let result = try Pack.run(Self.start + ["--target=target", "--patch=fix.so", "--ref=counter", "--replace=parse=parse_fixed",
                                                "--target=libdemo.so", "--patch=fix-lib.so", "--replace=lib_fn=parse_fixed"],
                                  in: scratch.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try PackHotpatchTests().verifiedHotpatch(scratch).targets.map { $0.redirections.map(\.symbol) } == [["parse"], ["lib_fn"]])
    }

    @Test func groupWithoutPatch_isRefusedNamingTheGroup() throws {
        try expectRefused(Self.start + Self.groupOfTarget + ["--target", "libdemo.so", "--replace", "lib_fn=parse_fixed"],
                          saying: "target group 2 (--target libdemo.so): give --patch OBJ.so", in: try prepare())
    }

    @Test func groupWithoutReplacement_isRefusedNamingTheGroup() throws {
        try expectRefused(Self.start + Self.groupOfTarget + ["--target", "libdemo.so", "--patch", "fix-lib.so"],
                          saying: "target group 2 (--target libdemo.so): give at least one --replace", in: try prepare())
    }

    @Test func groupWithTwoDebugFiles_isRefusedNamingTheGroup() throws {
        try expectRefused(Self.start + Self.groupOfLibrary + ["--target", "target.stripped", "--debug-file", "target.debug",
                                                              "--debug-file", "target", "--patch", "fix.so", "--replace", "parse=parse_fixed"],
                          saying: "target group 2 (--target target.stripped): --debug-file is given 2 times", in: try prepare())
    }

    @Test func groupOptionBeforeTheFirstOfSeveralTargets_isRefused() throws {
        try expectRefused(Self.start + ["--ref", "counter"] + Self.groupOfTarget + Self.groupOfLibrary,
                          saying: "--ref counter comes before the first --target", in: try prepare())
    }

    @Test func twoGroupsForTheSameObject_areRefused() throws {
        try expectRefused(Self.start + Self.groupOfTarget
                          + ["--target", "target.stripped", "--debug-file", "target.debug", "--patch", "fix-lib.so",
                             "--replace", "parse=parse_fixed"],
                          saying: "target group 2 (--target target.stripped) names the same object as target group 1 (--target target)",
                          in: try prepare())
    }

    @Test func twoGroupsWithPatchObjectsOfTheSameName_areRefused() throws {
        try expectRefused(Self.start + Self.groupOfTarget + ["--target", "libdemo.so", "--patch", "other/fix.so", "--replace", "lib_fn=parse_fixed"],
                          saying: "both use a patch object named fix.so", in: try prepare())
    }

    @Test func laterGroupThatCannotBePlanned_writesNothing_notEvenTheEarlierGroupsFiles() throws {
        try expectRefused(Self.start + Self.groupOfTarget + ["--target", "libdemo.so", "--patch", "fix-lib.so", "--replace", "lib_fn=missing_fixed"],
                          saying: "target group 2 (--target libdemo.so): ", in: try prepare())
    }

    @Test func relativePathHint_isRefusedNamingTheGroup() throws {
        let scratch = try prepare()
        try expectRefused(Self.start + Self.groupOfTarget + ["--path-hint", "lib/target"],
                          saying: "--path-hint lib/target is relative; give the absolute path", in: scratch)
    }
}
