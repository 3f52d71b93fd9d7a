import ArgumentParser
import Artifact
import Foundation

/// `hotpatch-pack publish`: bump the version, set the expiry, sign.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Increment the index version, set its expiry, and sign it.",
        discussion: """
            Checks every file the index names (hash and length) first, and runs the checks of \
            'hotpatch-pack hotpatch' again on every hotpatch target: its patch object (from the \
            channel) always; its undefined symbols and its function entries when the target itself \
            is at its path hint with the recorded build-id (otherwise a note says they were \
            skipped). Only then writes index.json and then index.json.sig, each to a temporary \
            file fsynced and renamed into place: the signature, written last, is the commit point \
            (an agent that reads between the two renames waits for it; a sync tool copying the \
            channel must write it last too, see docs/CHANNEL.md). Agents refuse the index \
            from the moment it expires, so publish again before then (e.g. from cron). It signs \
            with the key it is given; which keys are trusted is decided on each host.

            Example:
              hotpatch-pack publish --channel ./channel --private-key ~/keys/channel.key --expires-in 7d
            """
    )

    @OptionGroup var channel: ChannelOption

    @Option(help: ArgumentHelp("The private key from 'hotpatch-pack keygen'.", valueName: "FILE"))
    var privateKey: String

    @Option(name: .customLong("provider"),
            help: ArgumentHelp("An object that defines symbols the patch objects use, beyond the targets' dependencies (repeatable).",
                               valueName: "ELF"))
    var providers: [String] = []

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
        try checkHotpatches(in: &index, workspace: workspace)
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

    /// Runs `PublishChecks` again on every hotpatch target of `index`, as far as this machine has
    /// its files; marks near-only the redirections the entry check requires (an index written
    /// without the mark gets it before it is signed); prints warnings and notes on stderr, throws
    /// the first refusal.
    func checkHotpatches(in index: inout ChannelIndex, workspace: ChannelWorkspace) throws {
        for position in index.releases.indices {
            guard case .hotpatch(let id, let baseline, let level, let text, let cves, var targets, let kernel, let files) = index.releases[position] else { continue }
            for (slot, target) in targets.enumerated() {
                let patchPath = workspace.directory + "/" + target.patchObject.path
                let patchObject: PatchObject
                do { patchObject = try PatchObject(path: patchPath) } catch {
                    throw PackError("Release \(id): \(error)")
                }
                guard let elf = try? ELFFile.load(path: target.pathHint), elf.buildID == target.buildID else {
                    Standard.error("note: release \(id): no file with build-id \(target.buildID) at \(target.pathHint), "
                                   + "so its undefined symbols and function entries were not checked again")
                    continue
                }
                let plan = PlannedTarget(buildID: target.buildID, redirections: target.redirections,
                                         references: target.references, notes: [])
                let passed: PublishChecks.Passed
                do {
                    passed = try PublishChecks.check(target: elf, debugFile: nil, patchObject: patchObject, plan: plan,
                                                     providers: providers)
                } catch {
                    throw PackError("Release \(id): \(error)")
                }
                for warning in passed.warnings { Standard.error("warning: release \(id): \(warning)") }
                for (before, after) in zip(target.redirections, passed.redirections) where after.nearOnly && !before.nearOnly {
                    Standard.error("note: release \(id): \(after.symbol) is now marked near_only in the index")
                }
                targets[slot].redirections = passed.redirections
            }
            index.releases[position] = .hotpatch(id: id, baseline: baseline, level: level, description: text, cves: cves, targets: targets,
                                                 kernel: kernel, files: files)
        }
    }
}
