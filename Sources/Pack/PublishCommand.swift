import ArgumentParser
import Artifact
import Foundation

/// `hotpatch-pack publish`: bump the version, set the expiry, sign.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Increment the index version, set its expiry, and sign it.",
        discussion: """
            Checks every file the index names (hash and length) first, then writes index.json and \
            index.json.sig, each to a temporary file renamed into place. Agents refuse the index \
            from the moment it expires, so publish again before then (e.g. from cron). It signs \
            with the key it is given; which keys are trusted is decided on each host.

            Example:
              hotpatch-pack publish --channel ./channel --private-key ~/keys/channel.key --expires-in 7d
            """
    )

    @OptionGroup var channel: ChannelOption

    @Option(help: ArgumentHelp("The private key from 'hotpatch-pack keygen'.", valueName: "FILE"))
    var privateKey: String

    @Option(help: ArgumentHelp("How long the index stays valid: 90s, 5m, 2h, 7d, or seconds.", valueName: "DURATION"))
    var expiresIn: String = "7d"

    func validate() throws {
        do { _ = try DurationText.parse(expiresIn) } catch {
            switch error {
            case .outOfRange: throw ValidationError("--expires-in \(expiresIn): out of range (\(DurationText.rangeText))")
            case .notADuration: throw ValidationError("--expires-in \(expiresIn): expected a duration such as 90s, 5m, 2h, 7d")
            }
        }
    }

    func run() throws {
        let workspace = ChannelWorkspace(directory: channel.channel)
        guard let key = ChannelSigningKey(fileText: String(decoding: try ChannelWorkspace.read(privateKey), as: UTF8.self)) else {
            throw PackError("\(privateKey) is not a private key written by 'hotpatch-pack keygen'")
        }
        var index = try workspace.loadIndex()
        for release in index.releases {
            for reference in release.fileReferences {
                let path = workspace.directory + "/" + reference.path
                let digest: (sha256: String, length: UInt64)
                do { digest = try ChannelFileDigest.compute(path: path) } catch {
                    throw PackError("Release \(release.id): cannot read \(path): \(error)")
                }
                guard digest.sha256 == reference.sha256, digest.length == reference.length else {
                    throw PackError("Release \(release.id): \(path) changed since it was added "
                                    + "(now \(digest.length) bytes, SHA-256 \(digest.sha256))")
                }
            }
        }
        let seconds = DurationText.seconds(expiresIn) ?? 0
        index.version += 1
        index.expires = RFC3339.format(Date().timeIntervalSince1970.rounded(.down) + Double(seconds))
        let bytes = index.encoded()
        let signature = try key.sign(bytes)
        try ChannelWorkspace.writeAtomically(bytes, to: workspace.indexPath, mode: 0o644)
        try ChannelWorkspace.writeAtomically(Array(signature.fileText.utf8), to: workspace.signaturePath, mode: 0o644)
        print("Published \(workspace.indexPath) version \(index.version), expires \(index.expires), "
              + "signed by key \(key.publicKey().fingerprint)")
    }
}
