import Foundation
import Testing
@testable import Artifact

/// `--with-deb FILE` on `hotpatch` and `build`: the fixed Debian packages a hotpatch release
/// carries, real `.deb` files made with `dpkg-deb --build`; anything else is refused and nothing
/// is written to the channel.
@Suite struct PackWithDebTests {
    /// Makes `NAME_VERSION_all.deb` in the scratch folder with dpkg-deb, holding one small file.
    @discardableResult
    static func makeDeb(_ scratch: Scratch, name: String, version: String, architecture: String = "all") throws -> String {
        let root = "deb-\(name)-\(version)"
        try scratch.write("\(root)/DEBIAN/control", """
            Package: \(name)
            Version: \(version)
            Architecture: \(architecture)
            Maintainer: hotpatch-agent tests <root@localhost>
            Description: a fixed package for the --with-deb tests

            """)
        try scratch.write("\(root)/usr/share/doc/\(name)/fixed", "fixed in \(version)\n")
        let file = "\(name)_\(version)_\(architecture).deb"
        try Shell.sh("dpkg-deb --root-owner-group --build \(root) \(file) >/dev/null", in: scratch.path)
        return file
    }

    /// A scratch folder with a small library, its fix, and a channel with baseline B1.
    func prepare() throws -> Scratch {
        let scratch = try Scratch()
        try scratch.write("lib.c", "__attribute__((noinline)) int lib_fn(int x) { return x * 7 + 1 + (x >> 3) * (x & 5); }\n")
        try scratch.write("lib_fix.c", "int lib_fn_fixed(int x) { return x * 7; }\n")
        try Shell.sh("cc -shared -fPIC -O1 -Wl,--build-id -o libdemo.so lib.c && cc -shared -fPIC -O1 -Wl,--build-id -o lib_fix.so lib_fix.c",
                     in: scratch.path)
        try scratch.channelWithBaseline()
        return scratch
    }

    func hotpatch(_ scratch: Scratch, _ extra: [String]) throws -> ProgramRun {
        try Pack.run(["hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                      "--target", "libdemo.so", "--patch", "lib_fix.so", "--replace", "lib_fn=lib_fn_fixed"] + extra, in: scratch.path)
    }

    /// The files under the channel, relative to it, sorted.
    func channelFiles(_ scratch: Scratch) throws -> [String] {
        try Shell.sh("cd channel && find . -type f | sort", in: scratch.path).split(separator: "\n").map(String.init)
    }

    @Test func hotpatch_withTwoDebs_carriesThemInTheRelease_andTheAgentsVerifierAdmitsThem() throws {
        let scratch = try prepare()
        let first = try Self.makeDeb(scratch, name: "libdemo1", version: "1.2-2+deb12u1")
        let second = try Self.makeDeb(scratch, name: "libdemo-bin", version: "1.2-2+deb12u1")
        let result = try hotpatch(scratch, ["--with-deb", first, "--with-deb", second])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("carries libdemo1 1.2-2+deb12u1 (all), libdemo-bin 1.2-2+deb12u1 (all)"), "\(result.stdout)")
        guard case let .hotpatch(_, _, _, _, _, targets, _, files)? = try scratch.index().releases.dropFirst().first else {
            Issue.record("no hotpatch release")
            return
        }
        #expect(targets.count == 1)
        #expect(files.map(\.kind) == [.deb, .deb])
        #expect(files.map(\.file.path) == ["hotpatches/hp1/packages/\(first)", "hotpatches/hp1/packages/\(second)"])
        let original = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/" + first))
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/hotpatches/hp1/packages/" + first)) == original)
        #expect(files[0].file.length == UInt64(original.count))

        try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        try scratch.packOK("verify", "--channel", "channel", "--trusted-keys", "keys")
        let verifier = ChannelVerifier(channelDirectory: scratch.path + "/channel", trustedKeysDirectory: scratch.path + "/keys",
                                       storeDirectory: scratch.path + "/store")
        let release = try #require(try verifier.verify(highestAcceptedVersion: nil, now: Date()).hotpatchReleases.first)
        #expect(release.packages.map(\.channelPath) == files.map(\.file.path))
        let listed = try scratch.packOK("list", "--channel", "channel")
        #expect(listed.stdout.contains("2 package(s)"), "\(listed.stdout)")
    }

    @Test(arguments: [
        ("not-a-deb.deb", "not a Debian binary package"),
        ("missing.deb", "cannot read it: ENOENT"),
        ("fake.deb", "dpkg-deb cannot read its control file"),
        ("folder.deb", "not a regular file"),
    ])
    func hotpatch_withABadDeb_isRefusedNamingThePath_andWritesNothing(file: String, expected: String) throws {
        let scratch = try prepare()
        try scratch.write("not-a-deb.deb", "#!/bin/sh\necho I am a script\n")
        // An ar archive that starts like a package but holds no control archive.
        try scratch.write("debian-binary", "2.0\n")
        try Shell.sh("ar rc fake.deb debian-binary && mkdir folder.deb", in: scratch.path)
        let indexBefore = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/index.json"))
        let filesBefore = try channelFiles(scratch)
        let result = try hotpatch(scratch, ["--with-deb", file])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--with-deb \(file)"), "\(result.stderr)")
        #expect(result.stderr.contains(expected), "\(result.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/index.json")) == indexBefore)
        #expect(try channelFiles(scratch) == filesBefore, "nothing is written to the channel")
    }

    @Test func hotpatch_withTwoVersionsOfOnePackage_isRefused() throws {
        let scratch = try prepare()
        let old = try Self.makeDeb(scratch, name: "libdemo1", version: "1.2-2")
        let new = try Self.makeDeb(scratch, name: "libdemo1", version: "1.2-3")
        let result = try hotpatch(scratch, ["--with-deb", old, "--with-deb", new])
        #expect(result.status != 0)
        #expect(result.stderr.contains("are both package libdemo1"), "\(result.stderr)")
        #expect(try scratch.index().releases.map(\.id) == ["B1"])
    }

    @Test func build_withABadDeb_isRefusedBeforeTheBuilds_andWritesNothing() throws {
        let scratch = try prepare()
        try scratch.write("not-a-deb.deb", "plain text\n")
        let indexBefore = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/index.json"))
        try scratch.write("source/lib.c", "int lib_fn(int x) { return x; }\n")
        try scratch.write("fix.diff", "--- a/lib.c\n+++ b/lib.c\n@@ -1 +1 @@\n-int lib_fn(int x) { return x; }\n+int lib_fn(int x) { return x + 1; }\n")
        let result = try Pack.run(["build", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                   "--source", "source", "--diff", "fix.diff", "--build", "make", "--keep-work", "work",
                                   "--target", "libdemo.so", "--with-deb", "not-a-deb.deb"], in: scratch.path)
        #expect(result.status != 0)
        #expect(result.stderr.contains("--with-deb not-a-deb.deb: not a Debian binary package"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/work"), "refused before the work directory is made")
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/channel/index.json")) == indexBefore)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/hotpatches"))
    }

    @Test(arguments: ["hotpatch", "build"])
    func help_documentsWithDeb(command: String) throws {
        let scratch = try Scratch()
        let help = try scratch.pack(command, "--help").stdout
        #expect(help.contains("--with-deb"), "\(help)")
        #expect(help.contains("no reboot"), "\(help)")
    }
}
