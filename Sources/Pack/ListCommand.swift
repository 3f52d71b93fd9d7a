import ArgumentParser
import Artifact

/// `hotpatch-pack list`: what the channel's index holds (signed or not; use `verify` to check it).
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the releases in a channel's index.",
        discussion: """
            Reads index.json as it is (published or not) and does not check the signature: use \
            'verify' for that. --json prints the index itself.

            Example:
              hotpatch-pack list --channel ./channel --json
            """
    )

    @OptionGroup var channel: ChannelOption

    @Flag(help: "Print the index as JSON, for programs.")
    var json = false

    func run() throws {
        let index = try ChannelWorkspace(directory: channel.channel).loadIndex()
        if json {
            print(String(decoding: index.encoded(), as: UTF8.self), terminator: "")
            return
        }
        print("version \(index.version), expires \(index.expires), \(index.releases.count) release(s)")
        for release in index.releases {
            var line: String
            switch release {
            case let .hotpatch(id, baseline, level, _, _, targets, kernel, files):
                let functions = targets.flatMap(\.redirections).map(\.symbol).joined(separator: ",")
                line = "hotpatch  \(id)  baseline \(baseline) level \(level)"
                if !targets.isEmpty || kernel.isEmpty { line += "  \(targets.count) target(s): \(functions)" }
                if !kernel.isEmpty {
                    line += "  \(kernel.count) kernel(s): " + kernel.map { "\($0.livepatch)@\($0.release)" }.joined(separator: ",")
                }
                if !files.isEmpty { line += "  \(files.count) package(s)" }
            case let .baseline(id, planned, _, _, files):
                line = "baseline  \(id)  \(planned ? "planned" : "unplanned")  \(files.count) file(s)"
            case let .fix(id, baseline, _, _, files):
                line = "fix       \(id)  baseline \(baseline)  \(files.count) file(s)"
            }
            if !release.cves.isEmpty { line += "  " + release.cves.joined(separator: ",") }
            if !release.releaseDescription.isEmpty { line += "  — " + release.releaseDescription }
            print(line)
        }
    }
}
