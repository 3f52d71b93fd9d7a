import Foundation
import Glibc
import Testing
@testable import Artifact

/// Issue 14, findings 4, 5 and 10 at the publisher: `hotpatch-pack baseline` and `fix` refuse a
/// destination named twice, fail without leaving files or burning the id, say plainly which source
/// is missing, and keep a file's mode in the channel copy.
@Suite struct PackInstallFileTests {
    private func mode(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
    }

    @Test(arguments: ["baseline", "fix"])
    func release_whenTwoFilesShareADestination_failsAndLeavesNothing(command: String) throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.write("a.conf", "a\n")
        try scratch.write("b.conf", "b\n")
        let extra = command == "fix" ? ["--baseline", "B1"] : []
        let result = try Pack.run([command, "--channel", "channel", "--id", "R2"] + extra
                                  + ["--file", "a.conf=/etc/app.conf", "--file", "b.conf=/etc/app.conf"], in: scratch.path)
        #expect(result.status != 0)
        #expect(result.stderr.contains("destination '/etc/app.conf' is also the destination of --file a.conf=/etc/app.conf"), "\(result.stderr)")
        #expect(try scratch.index().releases.map(\.id) == ["B1"])
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/\(command == "fix" ? "fixes" : "baselines")/R2"))
    }

    @Test(arguments: ["baseline", "fix"])
    func release_whenAFileSourceIsMissing_saysSoPlainly_leavesNothing_andTheIDStaysFree(command: String) throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.write("app_1.0_all.deb", "not really a deb")
        let extra = command == "fix" ? ["--baseline", "B1"] : []
        let failed = try Pack.run([command, "--channel", "channel", "--id", "R2"] + extra
                                  + ["--deb", "app_1.0_all.deb", "--file", "missing.conf=/etc/app.conf"], in: scratch.path)
        #expect(failed.status != 0)
        #expect(failed.stderr.contains("cannot read --file source missing.conf: ENOENT (No such file or directory)"), "\(failed.stderr)")
        #expect(!failed.stderr.contains("NSCocoaErrorDomain") && !failed.stderr.contains("Domain="), "\(failed.stderr)")
        let folder = scratch.path + "/channel/" + (command == "fix" ? "fixes" : "baselines") + "/R2"
        #expect(!FileManager.default.fileExists(atPath: folder), "nothing is left in \(folder)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/channel").allSatisfy { !$0.hasPrefix(".staging") })

        try scratch.write("missing.conf", "now here\n")
        try Pack.run([command, "--channel", "channel", "--id", "R2"] + extra
                     + ["--deb", "app_1.0_all.deb", "--file", "missing.conf=/etc/app.conf"], in: scratch.path)
            .assertSucceeded()
        #expect(try scratch.index().releases.map(\.id) == ["B1", "R2"])
    }

    @Test func baseline_whenADebSourceIsMissing_namesTheOption() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        let failed = try scratch.pack("baseline", "--channel", "channel", "--id", "B2", "--deb", "gone.deb")
        #expect(failed.status != 0)
        #expect(failed.stderr.contains("cannot read --deb source gone.deb: ENOENT (No such file or directory)"), "\(failed.stderr)")
    }

    @Test func baseline_ofA0600File_keepsThatModeInTheChannelCopyAndTheIndex() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.write("secret.key", "private\n")
        chmod(scratch.path + "/secret.key", 0o600)
        try scratch.packOK("baseline", "--channel", "channel", "--id", "B2", "--file", "secret.key=/etc/app/secret.key")
        #expect(try mode(scratch.path + "/channel/baselines/B2/secret.key") == 0o600)
        guard case let .baseline(_, _, _, _, files)? = try scratch.index().releases.dropFirst().first else { Issue.record("no baseline"); return }
        #expect(files.first?.kind == .file(destination: "/etc/app/secret.key", mode: 0o600))
        try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        try scratch.packOK("verify", "--channel", "channel", "--trusted-keys", "keys")
    }
}

extension ProgramRun {
    /// Records a failure with stderr unless the command succeeded.
    func assertSucceeded(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(status == 0, "\(stderr)", sourceLocation: sourceLocation)
    }
}
