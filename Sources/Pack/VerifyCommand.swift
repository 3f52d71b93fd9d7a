import ArgumentParser
import Artifact
import Foundation

/// `hotpatch-pack verify`: the agent's own verification, run by the publisher or an operator.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a channel exactly as the agent does; exit status 0 only if it is valid.",
        discussion: """
            Runs the agent's own verifier: permissions (the channel must be writable only by root or \
            by you), signature by a trusted key, expiry, format, and every file by hash and length \
            through a copy in a store (a temporary one unless --store is given).

            Example:
              hotpatch-pack verify --channel ./channel --trusted-keys /etc/hotpatch-agent/keys
            """
    )

    @OptionGroup var channel: ChannelOption

    @Option(help: ArgumentHelp("The directory of trusted public keys (one file a key).", valueName: "DIR"))
    var trustedKeys: String

    @Option(help: ArgumentHelp("Copy verified files into this store instead of a temporary one.", valueName: "DIR"))
    var store: String?

    @Option(help: ArgumentHelp("Refuse an index version below this one (rollback check).", valueName: "N"))
    var highestAcceptedVersion: Int?

    @Flag(help: "Accept a channel that users other than root can write (like sshd's StrictModes no).")
    var allowWritable = false

    func run() throws {
        let temporary = store == nil
            ? FileManager.default.temporaryDirectory.appendingPathComponent("hotpatch-pack-verify-\(UUID().uuidString)").path
            : nil
        defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
        let verifier = ChannelVerifier(channelDirectory: channel.channel, trustedKeysDirectory: trustedKeys,
                                       storeDirectory: store ?? temporary!,
                                       policy: ChannelPolicy(allowGroupOrWorldWritable: allowWritable))
        let verified = try verifier.verify(highestAcceptedVersion: highestAcceptedVersion, now: Date())
        let counts = [("hotpatch", "hotpatches", verified.hotpatches.count), ("baseline", "baselines", verified.baselines.count),
                      ("fix", "fixes", verified.fixes.count)]
            .map { "\($0.2) \($0.2 == 1 ? $0.0 : $0.1)" }.joined(separator: ", ")
        print("Channel \(channel.channel) is valid: version \(verified.version), expires "
              + "\(RFC3339.format(verified.expires.timeIntervalSince1970)), signed by key \(verified.keyFingerprint); \(counts)")
    }
}
