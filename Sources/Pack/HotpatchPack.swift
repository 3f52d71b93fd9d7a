import ArgumentParser
import Artifact

/// The root command: builds, signs and checks update channels.
struct HotpatchPack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotpatch-pack",
        abstract: "Build, sign and check a hotpatch-agent update channel.",
        discussion: """
            A channel is a directory holding index.json, its signature index.json.sig, and the files \
            the releases name. Typical session:

              hotpatch-pack keygen --private-key publisher.key --public-key publisher.pub
              hotpatch-pack init --channel ./channel
              hotpatch-pack baseline --channel ./channel --id 2025.1 --planned
              hotpatch-pack hotpatch --channel ./channel --id 2025.1-hp1 --baseline 2025.1 --level 1 \\
                  --target ./build/app --patch ./fix.so --replace parse=parse_fixed
              hotpatch-pack publish --channel ./channel --private-key publisher.key
              hotpatch-pack verify --channel ./channel --trusted-keys ./keys
            """,
        subcommands: [KeygenCommand.self, InitCommand.self, HotpatchCommand.self, BuildCommand.self, BuildDebCommand.self, KernelCommand.self,
                       BaselineCommand.self,
                      FixCommand.self, PublishCommand.self, VerifyCommand.self, ListCommand.self,
                      BenchmarkVerifyCommand.self]
    )
}

/// The option every command that works on a channel takes.
struct ChannelOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The channel directory.", valueName: "DIR"))
    var channel: String
}

/// The files a baseline or fix installs: Debian packages and plain files.
struct InstallFileOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A Debian package to install (repeatable).", valueName: "PKG.deb"))
    var deb: [String] = []

    @Option(help: ArgumentHelp("A plain file to install at an absolute destination (repeatable).", valueName: "SRC=DEST"))
    var file: [String] = []

    /// Copies the files into `folder` of the channel, adds the release `makeRelease` builds from
    /// them to the index and saves it; on a failed save the copied files are removed again.
    func addRelease(to workspace: ChannelWorkspace, id: String, folder: String, checks: (ChannelIndex) throws -> Void = { _ in },
                    makeRelease: ([ChannelIndex.InstallFile]) -> ChannelIndex.Release) throws -> Int {
        var index = try workspace.loadIndex()
        try workspace.checkNewID(id, in: index)
        try checks(index)
        let files = try workspace.addInstallFiles(debs: deb, files: file, folder: folder)
        index.releases.append(makeRelease(files))
        do { try workspace.save(index) } catch {
            if !files.isEmpty { workspace.removeReleaseFolder(folder) }
            throw error
        }
        return files.count
    }
}


/// The options common to releases: description and CVE ids.
struct ReleaseTextOptions: ParsableArguments {
    @Option(name: .long, help: "What the release does, for people reading status and logs.")
    var description: String = ""

    @Option(name: .customLong("cve"), help: ArgumentHelp("A CVE id the release fixes (repeatable).", valueName: "ID"))
    var cves: [String] = []
}
