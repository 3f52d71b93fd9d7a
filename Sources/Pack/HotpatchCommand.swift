import Architecture
import ArgumentParser
import Artifact
import Foundation
import LinuxSystem

/// `hotpatch-pack hotpatch`: a hotpatch release from real targets and patch objects.
struct HotpatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotpatch",
        abstract: "Add a hotpatch: functions of one or more ELF objects redirected to patch objects.",
        discussion: """
            Reads each replaced function's offset, size and original bytes from the unstripped \
            target or its debug file (so stripped production binaries can be targeted; a stripped \
            shared library is still a valid target for its exported functions), records the \
            target's build-id, and checks that the patch object exports each replacement and uses \
            only relocations the agent's loader supports. A function shorter than the \(HostArchitecture.nearJumpLength)-byte jump \
            is redirected through the filler before its entry when the filler is proven unused (a jump there \
            and a 2-byte hop at the entry), and refused otherwise; those shorter than \(HostArchitecture.farJumpLength) bytes, compiler clones (.isra/.constprop/.part/.cold) and \
            inlining are reported as warnings on stderr. Each function's entry is disassembled: \
            a branch target inside the \(HostArchitecture.nearJumpLength)-byte jump is refused, and one \
            that only the \(HostArchitecture.farJumpLength)-byte jump would cover marks the function \
            near_only (a warning says so), so the agent uses only the shorter jump for it.

            Several objects in one release: each --target ELF starts a target group, and the \
            --debug-file, --patch, --replace, --ref and --path-hint after it, up to the next \
            --target, belong to that target. Each group needs one --patch (a patch object of its \
            own, with a file name no other group uses) and at least one --replace; no two groups \
            may name objects with the same build-id. The agent changes all of a release's objects \
            that a process maps in one stop, or none of them. With a single --target the group \
            options may stand in any order. Nothing is written when any group is refused.

            Fixed packages on disk: --with-deb FILE.deb (repeatable) adds a Debian binary package \
            to the release (copied under hotpatches/ID/packages/). The agent first patches every \
            running process that maps a target, then installs the packages with dpkg, so \
            processes started later load the fixed files; it asks for no reboot and no restart, \
            and names each process it could not patch as still running vulnerable code. Each \
            file must be a real .deb (read with dpkg-deb); anything else is refused and nothing \
            is written.

            Hotpatches are cumulative per object: level N must contain every fix of levels \
            1..N-1 of the same baseline, and a level that names no fix for an object keeps in \
            force that object's fix from the highest earlier level that names it; a level that \
            names an object replaces that object's earlier fix.

            Examples:
              hotpatch-pack hotpatch --channel ./channel --id 2025.1-hp2 --baseline 2025.1 --level 2 \\
                  --target ./build/libfoo.so.1 --debug-file ./build/libfoo.so.1.debug \\
                  --patch ./fix.so --replace parse=parse_fixed --ref parse_table --cve CVE-2025-1234
              hotpatch-pack hotpatch --channel ./channel --id 2025.1-hp3 --baseline 2025.1 --level 3 \\
                  --target ./build/libssl.so.3 --patch ./ssl-fix.so --replace ssl_read=ssl_read_fixed \\
                  --target ./build/libcrypto.so.3 --patch ./crypto-fix.so --replace bn_mul=bn_mul_fixed
              hotpatch-pack hotpatch --channel ./channel --id 2025.1-hp4 --baseline 2025.1 --level 4 \\
                  --target ./released/libfoo.so.1.2.3 --patch ./foo-fix.so --replace parse=parse_fixed \\
                  --with-deb ./libfoo1_1.2.3-1+deb12u1_amd64.deb --cve CVE-2025-2345
            """
    )

    @OptionGroup var channel: ChannelOption

    @OptionGroup var release: HotpatchLevelOptions

    @Option(help: ArgumentHelp("An object to patch, as built (unstripped, or stripped with --debug-file); starts a target group (repeatable).",
                               valueName: "ELF"))
    var target: [String]

    @Option(help: ArgumentHelp("The target's separate debug file (same build-id); at most one per group.", valueName: "ELF"))
    var debugFile: [String] = []

    @Option(help: ArgumentHelp("The patch object (cc -shared -fPIC); one per group.", valueName: "OBJ.so"))
    var patch: [String]

    @Option(name: .customLong("replace"),
            help: ArgumentHelp("A function of the target and the patch object's function replacing it (repeatable).",
                               valueName: "SYMBOL=REPLACEMENT"))
    var replacements: [String]

    @Option(name: .customLong("ref"),
            help: ArgumentHelp("A non-exported target symbol the patch object uses (repeatable).", valueName: "SYMBOL"))
    var references: [String] = []

    @Option(help: ArgumentHelp("The absolute path the target has on hosts (default: --target's absolute path); the agent watches that file for late loads; at most one per group.",
                               valueName: "PATH"))
    var pathHint: [String] = []

    @Option(name: .customLong("provider"),
            help: ArgumentHelp("An object that defines symbols the patch objects use, beyond the targets' dependencies (repeatable; for every group).",
                               valueName: "ELF"))
    var providers: [String] = []

    @OptionGroup var text: ReleaseTextOptions

    @OptionGroup var withDeb: WithDebOptions

    func validate() throws {
        guard !target.isEmpty else { throw ValidationError("give --target ELF: the object to patch") }
        guard !patch.isEmpty else { throw ValidationError("give --patch OBJ.so: the patch object") }
        guard !replacements.isEmpty else { throw ValidationError("give at least one --replace SYMBOL=REPLACEMENT") }
        for spec in replacements {
            let parts = spec.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--replace \(spec): expected SYMBOL=REPLACEMENT")
            }
        }
    }

    /// The target groups of the command line this process was started with, checked against
    /// what ArgumentParser read (the same options, the same values).
    private func groups() throws -> [TargetGroup] {
        // argv: hotpatch-pack hotpatch OPTIONS…; the root command takes no option of its own.
        let groups = try TargetGroups.parse(Array(CommandLine.arguments.dropFirst(2)))
        let same = groups.map(\.target) == target && groups.map(\.patch) == patch
            && groups.flatMap { $0.replacements.map { "\($0.symbol)=\($0.replacement)" } }.sorted() == replacements.sorted()
            && groups.flatMap(\.references).sorted() == references.sorted()
            && groups.compactMap(\.debugFile).sorted() == debugFile.sorted() && groups.compactMap(\.pathHint).sorted() == pathHint.sorted()
        guard same else {
            throw PackError("Failed to read the target groups from the command line: give each option as --option VALUE or --option=VALUE")
        }
        return groups
    }

    func run() throws {
        let addition = release.addition(text: text, providers: providers, withDeb: withDeb)
        let written = try addition.add(try groups(), to: ChannelWorkspace(directory: channel.channel))
        print(addition.summary(of: written))
    }
}

/// Writing to the standard streams without the non-Sendable C globals.
enum Standard {
    static func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
