import ArgumentParser
import Artifact

/// `hotpatch-pack fix`: a fix that cannot be hotpatched, installed and then a reboot.
struct FixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fix",
        abstract: "Add a fix that cannot be hotpatched: installed, then a reboot.",
        discussion: """
            For changes a hotpatch cannot carry (a data layout change, a change too large to patch). \
            --file SRC=DEST and --deb work as for 'baseline'.

            Example:
              hotpatch-pack fix --channel ./channel --id 2025.1-fix1 --baseline 2025.1 \\
                  --deb ./out/libfoo1_1.2-2_amd64.deb --cve CVE-2025-1234
            """
    )

    @OptionGroup var channel: ChannelOption

    @Option(help: "The fix's id (letters, digits, '.', '_', '+', '-').")
    var id: String

    @Option(help: "The baseline the fix is for.")
    var baseline: String

    @Option(help: ArgumentHelp("A Debian package to install (repeatable).", valueName: "PKG.deb"))
    var deb: [String] = []

    @Option(help: ArgumentHelp("A plain file to install at an absolute destination (repeatable).", valueName: "SRC=DEST"))
    var file: [String] = []

    @OptionGroup var text: ReleaseTextOptions

    func run() throws {
        let workspace = ChannelWorkspace(directory: channel.channel)
        var index = try workspace.loadIndex()
        try workspace.checkNewID(id, in: index)
        try workspace.checkBaselineExists(baseline, in: index)
        let folder = "fixes/\(id)"
        let files = try workspace.addInstallFiles(debs: deb, files: file, folder: folder)
        index.releases.append(.fix(id: id, baseline: baseline, description: text.description, cves: text.cves, files: files))
        do { try workspace.save(index) } catch {
            if !files.isEmpty { workspace.removeReleaseFolder(folder) }
            throw error
        }
        print("Added fix \(id) for baseline \(baseline) with \(files.count) file(s); run 'hotpatch-pack publish' to sign")
    }
}
