import ArgumentParser
import Artifact
import Foundation

/// `hotpatch-pack keygen`: a new Ed25519 key pair for signing a channel.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create an Ed25519 key pair for signing a channel.",
        discussion: """
            The private key file is created with mode 0600 and is never replaced. The public key \
            file is one line 'ed25519 <base64 key> [comment]': copy it into each host's \
            /etc/hotpatch-agent/keys/ (any one trusted key suffices; several allow rotation).

            Example:
              hotpatch-pack keygen --private-key ~/keys/channel.key --public-key channel.pub
            """
    )

    @Option(help: ArgumentHelp("Where to write the private key (mode 0600).", valueName: "FILE"))
    var privateKey: String

    @Option(help: ArgumentHelp("Where to write the public key.", valueName: "FILE"))
    var publicKey: String

    @Option(help: "A comment stored after the public key (e.g. who owns it).")
    var comment: String = "hotpatch-pack"

    func validate() throws {
        guard !comment.contains(where: \.isNewline) else { throw ValidationError("--comment must be one line") }
    }

    func run() throws {
        for path in [privateKey, publicKey] where FileManager.default.fileExists(atPath: path) {
            throw PackError("\(path) already exists (remove it first to replace it)")
        }
        let key = ChannelSigningKey.generate()
        try ChannelWorkspace.createExclusively(key.fileText, at: privateKey, mode: 0o600)
        do {
            try ChannelWorkspace.createExclusively(key.publicKey(comment: comment).fileText, at: publicKey, mode: 0o644)
        } catch {
            // Leave no private key whose public half was never written.
            try? FileManager.default.removeItem(atPath: privateKey)
            throw error
        }
        print("Wrote private key \(privateKey) and public key \(publicKey) (fingerprint \(key.publicKey().fingerprint))")
    }
}
