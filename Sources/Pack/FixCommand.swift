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

    @OptionGroup var install: InstallFileOptions

    @OptionGroup var text: ReleaseTextOptions

    func run() throws {
        let workspace = ChannelWorkspace(directory: channel.channel)
        let count = try install.addRelease(to: workspace, id: id, folder: "fixes/\(id)",
                                           checks: { try workspace.checkBaselineExists(baseline, in: $0) }) { files in
            .fix(id: id, baseline: baseline, description: text.description, cves: text.cves, files: files)
        }
        print("Added fix \(id) for baseline \(baseline) with \(count) file(s); run 'hotpatch-pack publish' to sign")
    }
}
