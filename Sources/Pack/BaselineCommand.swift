import ArgumentParser
import Artifact

/// Whether a baseline is the regular cadence or an out-of-band one.
enum BaselinePlanning: String, EnumerableFlag {
    case planned, unplanned

    static func help(for value: BaselinePlanning) -> ArgumentHelp? {
        switch value {
        case .planned: return "A regular cumulative update (the default)."
        case .unplanned: return "An out-of-band update, e.g. a zero-day that could not ship as a hotpatch."
        }
    }
}

/// `hotpatch-pack baseline`: a cumulative update that needs a reboot.
struct BaselineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baseline",
        abstract: "Add a baseline: a cumulative update, installed and then a reboot.",
        discussion: """
            Baselines are ordered by publication: the one added last is the newest. A baseline with \
            no files is valid (e.g. the state hosts were installed with). --file SRC=DEST copies SRC \
            from this machine into the channel; the agent installs it atomically at the absolute \
            path DEST with SRC's permission bits (kept in the channel copy too); a DEST named twice is \
            refused. --deb adds a Debian package. Nothing is written unless every source is readable, \
            so a failed command leaves no file and its id free.

            Example:
              hotpatch-pack baseline --channel ./channel --id 2025.2 --planned \\
                  --deb ./out/app_2.0_amd64.deb --file ./out/app.conf=/etc/app/app.conf
            """
    )

    @OptionGroup var channel: ChannelOption

    @Option(help: "The baseline's id (letters, digits, '.', '_', '+', '-').")
    var id: String

    @Flag var planning: BaselinePlanning = .planned

    @OptionGroup var install: InstallFileOptions

    @OptionGroup var text: ReleaseTextOptions

    func run() throws {
        let count = try install.addRelease(to: ChannelWorkspace(directory: channel.channel), id: id, folder: "baselines/\(id)") { files in
            .baseline(id: id, planned: planning == .planned, description: text.description, cves: text.cves, files: files)
        }
        print("Added \(planning.rawValue) baseline \(id) with \(count) file(s); run 'hotpatch-pack publish' to sign")
    }
}
