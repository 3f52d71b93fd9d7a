import ArgumentParser
import Artifact
import Foundation

/// `hotpatch-pack init`: an empty channel.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create an empty channel (version 0, unsigned until the first publish).",
        discussion: """
            Example:
              hotpatch-pack init --channel ./channel
            """
    )

    @OptionGroup var channel: ChannelOption

    func run() throws {
        let workspace = ChannelWorkspace(directory: channel.channel)
        try ChannelWorkspace.makeDirectory(workspace.directory)
        guard !FileManager.default.fileExists(atPath: workspace.indexPath) else {
            throw PackError("\(workspace.indexPath) already exists; this is a channel already")
        }
        try workspace.save(ChannelIndex(version: 0, expires: RFC3339.format(0), releases: []))
        print("Created channel \(workspace.directory); add releases, then run 'hotpatch-pack publish'")
    }
}
