import Architecture
import ArgumentParser
import Artifact
import Foundation
import LinuxSystem

/// `hotpatch-pack hotpatch`: a hotpatch release from a real target and patch object.
struct HotpatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotpatch",
        abstract: "Add a hotpatch: functions of one ELF object redirected to a patch object.",
        discussion: """
            Reads each replaced function's offset, size and original bytes from the unstripped \
            target or its debug file (so stripped production binaries can be targeted; a stripped \
            shared library is still a valid target for its exported functions), records the \
            target's build-id, and checks that the patch object exports each replacement and uses \
            only relocations the agent's loader supports. Functions shorter than a \(HostArchitecture.nearJumpLength)-byte jump \
            are refused; those shorter than \(HostArchitecture.farJumpLength) bytes, compiler clones (.isra/.constprop/.part/.cold) and \
            inlining are reported as warnings on stderr. Hotpatches are cumulative: level N must \
            contain every fix of levels 1..N-1 of the same baseline.

            Example:
              hotpatch-pack hotpatch --channel ./channel --id 2025.1-hp2 --baseline 2025.1 --level 2 \\
                  --target ./build/libfoo.so.1 --debug-file ./build/libfoo.so.1.debug \\
                  --patch ./fix.so --replace parse=parse_fixed --ref parse_table --cve CVE-2025-1234
            """
    )

    @OptionGroup var channel: ChannelOption

    @Option(help: "The hotpatch's id (letters, digits, '.', '_', '+', '-').")
    var id: String

    @Option(help: "The baseline the hotpatch applies to.")
    var baseline: String

    @Option(help: "Its cumulative level within the baseline, above every earlier level.")
    var level: Int

    @Option(help: ArgumentHelp("The object to patch, as built (unstripped, or stripped with --debug-file).", valueName: "ELF"))
    var target: String

    @Option(help: ArgumentHelp("The target's separate debug file (same build-id).", valueName: "ELF"))
    var debugFile: String?

    @Option(help: ArgumentHelp("The patch object (cc -shared -fPIC).", valueName: "OBJ.so"))
    var patch: String

    @Option(name: .customLong("replace"),
            help: ArgumentHelp("A function of the target and the patch object's function replacing it (repeatable).",
                               valueName: "SYMBOL=REPLACEMENT"))
    var replacements: [String]

    @Option(name: .customLong("ref"),
            help: ArgumentHelp("A non-exported target symbol the patch object uses (repeatable).", valueName: "SYMBOL"))
    var references: [String] = []

    @Option(help: ArgumentHelp("Where the target usually lives on hosts, for messages (default: --target).", valueName: "PATH"))
    var pathHint: String?

    @OptionGroup var text: ReleaseTextOptions

    func validate() throws {
        guard level >= 1 else { throw ValidationError("--level must be 1 or more") }
        guard !replacements.isEmpty else { throw ValidationError("give at least one --replace SYMBOL=REPLACEMENT") }
        for spec in replacements {
            let parts = spec.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--replace \(spec): expected SYMBOL=REPLACEMENT")
            }
        }
    }

    func run() throws {
        let workspace = ChannelWorkspace(directory: channel.channel)
        var index = try workspace.loadIndex()
        try workspace.checkNewID(id, in: index)
        try workspace.checkBaselineExists(baseline, in: index)
        let previous = index.releases.compactMap { release -> Int? in
            if case let .hotpatch(_, base, level, _, _, _) = release, base == baseline { return level } else { return nil }
        }.max()
        if let previous, level <= previous {
            throw PackError("Level \(level) is not above level \(previous), the highest of baseline \(baseline)")
        }

        let pairs = replacements.map { spec -> (symbol: String, replacement: String) in
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts[1])
        }
        let plan: PlannedTarget
        do {
            let targetFile = try ELFFile.load(path: target)
            let debug = try debugFile.map { try ELFFile.load(path: $0) }
            let patchObject = try PatchObject(path: patch)
            plan = try RedirectionPlanner.plan(target: targetFile, debugFile: debug, patchObject: patchObject,
                                               replacements: pairs, references: references)
        } catch {
            throw PackError("\(error)")
        }
        for note in plan.notes { Standard.error("warning: \(note)") }

        let name = (patch as NSString).lastPathComponent
        let object = try workspace.addFile(patch, at: "hotpatches/\(id)/\(name)")
        let hint = pathHint ?? URL(fileURLWithPath: target).standardizedFileURL.path
        let entry = ChannelIndex.Target(buildID: plan.buildID, pathHint: hint, patchObject: object,
                                        redirections: plan.redirections, references: plan.references)
        index.releases.append(.hotpatch(id: id, baseline: baseline, level: level, description: text.description,
                                        cves: text.cves, targets: [entry]))
        try workspace.save(index)
        print("Added hotpatch \(id) (baseline \(baseline), level \(level)) for build-id \(plan.buildID): "
              + plan.redirections.map { "\($0.symbol)→\($0.replacement)" }.joined(separator: ", ")
              + "; run 'hotpatch-pack publish' to sign")
    }
}

/// Writing to the standard streams without the non-Sendable C globals.
enum Standard {
    static func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
