import Foundation
import Testing
@testable import Artifact

/// `hotpatch-pack kernel` on relocatable objects laid out as Kbuild lays out a module (`.modinfo`
/// strings and a `.gnu.linkonce.this_module` section): this host has no kernel headers to build a
/// real livepatch module, but `.modinfo` is read exactly as from one.
@Suite struct PackKernelTests {
    static let release = "6.1.0-57-amd64"
    static let buildID = "a3e4cd60a8ec14f02aa41b41d5b5846d3d9f1dd8"

    /// C source of a module object whose `.modinfo` holds `fields`.
    static func module(_ fields: [String]) -> String {
        let strings = fields.map { $0 + "\\0" }.joined()
        return """
        static const char modinfo[] __attribute__((section(".modinfo"), used, aligned(1))) = "\(strings)";
        static char this_module[64] __attribute__((section(".gnu.linkonce.this_module"), used));
        int klp_fixed(void) { return 2; }
        """
    }

    static func livePatch(_ name: String, release: String = release) -> String {
        module(["license=GPL", "livepatch=Y", "vermagic=\(release) SMP preempt mod_unload modversions ", "name=\(name)"])
    }

    /// A channel with baseline B1, keys, and module objects: `lp1.ko`/`lp2.ko` (live patches for
    /// 6.1.0-57-amd64), `lp58.ko` (for 6.1.0-58-amd64), `plain.ko` (no livepatch flag),
    /// `noname.ko`, `lib.so` (a shared object), `vmlinux` (an executable with a build-id) and
    /// `nobuildid` (one without).
    func prepare() throws -> Scratch {
        let scratch = try Scratch()
        try scratch.write("lp1.c", Self.livePatch("livepatch_l1"))
        try scratch.write("lp2.c", Self.livePatch("livepatch_l2"))
        try scratch.write("lp58.c", Self.livePatch("livepatch_l1", release: "6.1.0-58-amd64"))
        try scratch.write("plain.c", Self.module(["vermagic=\(Self.release) SMP ", "name=plain"]))
        try scratch.write("noname.c", Self.module(["livepatch=Y", "vermagic=\(Self.release) SMP "]))
        try scratch.write("vmlinux.c", "int main(void) { return 0; }\n")
        try Shell.sh("""
            for m in lp1 lp2 lp58 plain noname; do cc -c -O1 -o $m.ko $m.c || exit 1; done &&
            mkdir -p other && cc -c -O1 -o other/lp1.ko lp1.c && echo 'int x;' >> other/lp1.ko &&
            cc -shared -fPIC -o lib.so lp1.c && cc -Wl,--build-id=sha1 -o vmlinux vmlinux.c &&
            cc -Wl,--build-id=none -o nobuildid vmlinux.c
            """, in: scratch.path)
        try scratch.channelWithBaseline()
        return scratch
    }

    static let start = ["kernel", "--channel", "channel", "--id", "k1", "--baseline", "B1", "--level", "1"]

    /// Runs `hotpatch-pack` expecting a refusal containing `message`, and checks nothing was written.
    private func expectRefused(_ arguments: [String], saying message: String, in scratch: Scratch,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try Pack.run(arguments, in: scratch.path)
        #expect(result.status != 0, "\(arguments)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(message), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(try scratch.index().releases.map(\.id).allSatisfy { $0 != "k1" }, sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/hotpatches/k1"), sourceLocation: sourceLocation)
    }

    @discardableResult
    private func packOK(_ scratch: Scratch, _ arguments: [String]) throws -> ProgramRun {
        let result = try Pack.run(arguments, in: scratch.path)
        #expect(result.status == 0, "hotpatch-pack \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        return result
    }

    private func verified(_ scratch: Scratch) throws -> VerifiedChannel {
        try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        return try ChannelVerifier(channelDirectory: scratch.path + "/channel", trustedKeysDirectory: scratch.path + "/keys",
                                   storeDirectory: scratch.path + "/store").verify(highestAcceptedVersion: nil, now: Date())
    }

    @Test func kernel_ofLivePatchModule_addsAVerifiableReleaseWithTheModulesName() throws {
        let scratch = try prepare()
        let result = try packOK(scratch, Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release,
                                                      "--kernel-build-id", Self.buildID, "--cve", "CVE-2025-1"])
        #expect(result.stdout.contains("livepatch_l1 for \(Self.release)"), "\(result.stdout)")
        let release = try #require(try verified(scratch).hotpatchReleases.first { $0.id == "k1" })
        #expect(release.hotpatch.level == 1 && release.hotpatch.targets.isEmpty && release.cves == ["CVE-2025-1"])
        let patch = try #require(release.kernel.first)
        #expect(patch.livepatchName == "livepatch_l1")
        #expect(patch.buildID.description == Self.buildID && patch.kernelRelease == Self.release)
        #expect(try Data(contentsOf: URL(fileURLWithPath: patch.modulePath)) == Data(contentsOf: URL(fileURLWithPath: scratch.path + "/lp1.ko")))
        let list = try scratch.packOK("list", "--channel", "channel").stdout
        #expect(list.contains("1 kernel(s): livepatch_l1@\(Self.release)"), "\(list)")
    }

    @Test func kernel_withKernelNotes_readsTheBuildIDFromAVmlinuxOrTheNotesFile() throws {
        let scratch = try prepare()
        let notes = try Shell.sh("readelf -n vmlinux", in: scratch.path)
        let expected = try #require(notes.split(separator: "\n").first { $0.contains("Build ID:") }?.split(separator: " ").last.map(String.init))
        try packOK(scratch, Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-notes", "vmlinux"])
        guard case let .hotpatch(_, _, _, _, _, _, kernel, _)? = try scratch.index().releases.last else { Issue.record("no release"); return }
        #expect(kernel.first?.buildID.description == expected)

        // This machine's /sys/kernel/notes, copied as a publisher would copy it from a host.
        try Shell.sh("cat /sys/kernel/notes > notes", in: scratch.path)
        try packOK(scratch, ["kernel", "--channel", "channel", "--id", "k2", "--baseline", "B1", "--level", "2",
                            "--module", "lp2.ko", "--kernel-release", Self.release, "--kernel-notes", "notes"])
        guard case let .hotpatch(_, _, _, _, _, _, second, _)? = try scratch.index().releases.last,
              let id = second.first?.buildID else { Issue.record("no release"); return }
        let raw = Array(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/notes")))
        #expect(raw.indices.contains { raw[$0...].starts(with: Array("GNU\0".utf8) + id.bytes) })
    }

    @Test func kernel_withTwoGroupsForTwoKernels_writesBothModules() throws {
        let scratch = try prepare()
        try packOK(scratch, Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-build-id", Self.buildID,
                                         "--module", "lp58.ko", "--kernel-release", "6.1.0-58-amd64", "--kernel-build-id", "0badc0de"])
        let release = try #require(try verified(scratch).hotpatchReleases.first { $0.id == "k1" })
        #expect(release.kernel.map(\.kernelRelease) == [Self.release, "6.1.0-58-amd64"])
        #expect(release.kernel.map(\.buildID.description) == [Self.buildID, "0badc0de"])
    }

    @Test func kernel_refusesModulesThatAreNoLivePatchOrForAnotherKernel_writingNothing() throws {
        let scratch = try prepare()
        let group = { (module: String) in ["--module", module, "--kernel-release", Self.release, "--kernel-build-id", Self.buildID] }
        try expectRefused(Self.start + group("plain.ko"), saying: "is not a kernel live patch module", in: scratch)
        try expectRefused(Self.start + group("lp58.ko"), saying: "was built for kernel 6.1.0-58-amd64 (its vermagic), not --kernel-release \(Self.release)", in: scratch)
        try expectRefused(Self.start + group("noname.ko"), saying: "has no name=", in: scratch)
        try expectRefused(Self.start + group("lib.so"), saying: "is ET_DYN, not a kernel module", in: scratch)
        try expectRefused(Self.start + group("lp1.c"), saying: "not an ELF file", in: scratch)
    }

    @Test func kernel_refusesBadKernelIdentities_writingNothing() throws {
        let scratch = try prepare()
        try expectRefused(Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-build-id", "xyz"],
                          saying: "--kernel-build-id 'xyz' is not hex", in: scratch)
        try expectRefused(Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-notes", "lp1.c"],
                          saying: "--kernel-notes lp1.c is neither a copy of /sys/kernel/notes nor a vmlinux", in: scratch)
        try expectRefused(Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-notes", "nobuildid"],
                          saying: "--kernel-notes nobuildid holds no GNU build-id note", in: scratch)
        try expectRefused(Self.start + ["--module", "lp1.ko", "--kernel-build-id", Self.buildID],
                          saying: "give --kernel-release RELEASE", in: scratch)
        try expectRefused(Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release],
                          saying: "give --kernel-build-id HEX or --kernel-notes FILE", in: scratch)
        try expectRefused(Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-build-id", Self.buildID,
                                        "--kernel-notes", "vmlinux"],
                          saying: "give one --kernel-build-id or one --kernel-notes per module", in: scratch)
    }

    @Test func kernel_refusesTwoModulesForOneKernelOrWithOneFileName_writingNothing() throws {
        let scratch = try prepare()
        try expectRefused(Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-build-id", Self.buildID,
                                        "--module", "lp2.ko", "--kernel-release", Self.release, "--kernel-build-id", Self.buildID],
                          saying: "names the same kernel build as module group 1", in: scratch)
        try expectRefused(Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-build-id", Self.buildID,
                                        "--module", "other/lp1.ko", "--kernel-release", Self.release, "--kernel-build-id", "0badc0de"],
                          saying: "both use a module file named lp1.ko", in: scratch)
    }

    @Test func kernel_atTheNextLevel_refusesADifferentModuleWithTheSameName() throws {
        let scratch = try prepare()
        try packOK(scratch, Self.start + ["--module", "lp1.ko", "--kernel-release", Self.release, "--kernel-build-id", Self.buildID])
        let result = try scratch.pack("kernel", "--channel", "channel", "--id", "k2", "--baseline", "B1", "--level", "2",
                                      "--module", "other/lp1.ko", "--kernel-release", Self.release, "--kernel-build-id", Self.buildID)
        #expect(result.status != 0)
        #expect(result.stderr.contains("each level's module needs its own name"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/hotpatches/k2"))
        try scratch.packOK("kernel", "--channel", "channel", "--id", "k2", "--baseline", "B1", "--level", "2",
                           "--module", "lp2.ko", "--kernel-release", Self.release, "--kernel-build-id", Self.buildID)
    }

    @Test func help_ofKernel_showsAnExampleAndTheAtomicReplaceRequirement() throws {
        let scratch = try Scratch()
        let help = try scratch.packOK("kernel", "--help").stdout
        #expect(help.contains("hotpatch-pack kernel --channel"))
        #expect(help.contains("atomic replace") && help.contains("klp_patch.replace"))
    }
}
