import ArgumentParser
import Artifact
import Foundation
import LinuxSystem

/// `hotpatch-pack kernel`: a hotpatch release of kernel live patch modules, one per kernel build.
struct KernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Add a hotpatch of kernel live patch modules, each for one exact kernel build.",
        discussion: """
            Each --module FILE.ko starts a module group, and the --kernel-release and \
            --kernel-build-id (or --kernel-notes) after it, up to the next --module, belong to \
            that module. With a single --module the group options may stand in any order. The \
            agent loads the module whose build-id is the running kernel's (from /sys/kernel/notes) \
            with finit_module, and follows /sys/kernel/livepatch/NAME until the transition ends.

            Each module is read before anything is written: it must be an x86-64 ELF relocatable \
            kernel module (a Kbuild .ko with .modinfo and .gnu.linkonce.this_module), marked \
            MODULE_INFO(livepatch, "Y"), with a name (its folder under /sys/kernel/livepatch) and a \
            vermagic whose release (its first word) is --kernel-release. No two groups may name \
            one kernel build-id or modules with one file name. Nothing is written when any group \
            is refused.

            Levels are cumulative per kernel build-id, as per object for processes: the fix in \
            force is the highest level, up to the desired one, with a module for the running \
            kernel. Build every module with atomic replace (klp_patch.replace = true) so that \
            loading level N+1 replaces level N in one transition; this is not checked here (the \
            flag sits in relocated data of the module). Each level's module needs a name of its own.

            Examples:
              hotpatch-pack kernel --channel ./channel --id 2025.1-k1 \\
                  --baseline 2025.1 --level 1 --module ./livepatch_l1.ko \\
                  --kernel-release 6.1.0-57-amd64 --kernel-build-id 3f1c…e9
              hotpatch-pack kernel --channel ./channel --id 2025.1-k2 \\
                  --baseline 2025.1 --level 2 --cve CVE-2025-1234 \\
                  --module ./57/livepatch_l2.ko --kernel-release 6.1.0-57-amd64 \\
                  --kernel-notes ./57/notes \\
                  --module ./58/livepatch_l2.ko --kernel-release 6.1.0-58-amd64 \\
                  --kernel-notes ./58/vmlinux
            """
    )

    @OptionGroup var channel: ChannelOption

    @OptionGroup var hotpatch: HotpatchLevelOptions

    @Option(help: ArgumentHelp("A kernel live patch module, as Kbuild built it; starts a module group (repeatable).",
                               valueName: "FILE.ko"))
    var module: [String]

    @Option(help: ArgumentHelp("The kernel release (uname -r) the group's module is for; one per group.", valueName: "RELEASE"))
    var kernelRelease: [String] = []

    @Option(help: ArgumentHelp("That kernel's GNU build-id in hex, as /sys/kernel/notes or readelf -n vmlinux shows it; one per group.",
                               valueName: "HEX"))
    var kernelBuildID: [String] = []

    @Option(help: ArgumentHelp("A copy of that kernel's /sys/kernel/notes, or its vmlinux, to read the build-id from (instead of --kernel-build-id).",
                               valueName: "FILE"))
    var kernelNotes: [String] = []

    @OptionGroup var text: ReleaseTextOptions

    func validate() throws {
        guard !module.isEmpty else { throw ValidationError("give --module FILE.ko: the kernel live patch module") }
    }

    func run() throws {
        let groups = try KernelGroups.parse(Array(CommandLine.arguments.dropFirst(2)))
        guard groups.map(\.module) == module, groups.map(\.release).sorted() == kernelRelease.sorted(),
              groups.compactMap(\.buildIDText).sorted() == kernelBuildID.sorted(),
              groups.compactMap(\.notesFile).sorted() == kernelNotes.sorted() else {
            throw PackError("Failed to read the module groups from the command line: give each option as --option VALUE or --option=VALUE")
        }
        let workspace = ChannelWorkspace(directory: channel.channel)
        var index = try workspace.loadIndex()
        try hotpatch.checkNew(in: index, workspace: workspace)

        // Every module read and checked, and the resulting index checked, before anything is written.
        let folder = "hotpatches/\(hotpatch.id)"
        var planned: [(group: KernelGroup, entry: ChannelIndex.KernelModule)] = []
        for group in groups {
            let label = groups.count > 1 ? "\(group.label): " : ""
            let entry = try Self.plan(group, folder: folder, label: label)
            if let earlier = planned.first(where: { $0.entry.buildID == entry.buildID }) {
                throw PackError("\(group.label) names the same kernel build as \(earlier.group.label) (build-id \(entry.buildID)): give one module per kernel build")
            }
            if let earlier = planned.first(where: { $0.entry.module.path == entry.module.path }) {
                throw PackError("\(group.label) and \(earlier.group.label) both use a module file named \(Files.baseName(group.module)): give each module a file name of its own")
            }
            planned.append((group, entry))
        }
        var candidate = index
        candidate.releases.append(hotpatchRelease(planned.map(\.entry)))
        do throws(ChannelRefusal) {
            _ = try ChannelIndex.parse(candidate.encoded(), path: workspace.indexPath)
        } catch {
            throw PackError("The release would make the index invalid: \(error.reason)")
        }

        let folderExisted = FileManager.default.fileExists(atPath: workspace.directory + "/" + folder)
        do {
            for (group, entry) in planned {
                let copied = try workspace.addFile(group.module, at: entry.module.path)
                guard copied == entry.module else {
                    throw PackError("\(group.module) changed while it was being added (SHA-256 \(copied.sha256), read as \(entry.module.sha256))")
                }
            }
            index.releases.append(hotpatchRelease(planned.map(\.entry)))
            try workspace.save(index)
        } catch {
            if !folderExisted { workspace.removeReleaseFolder(folder) }
            throw error
        }
        let modules = planned.map { "\($0.entry.livepatch) for \($0.entry.release) (build-id \($0.entry.buildID))" }
        print("Added kernel hotpatch \(hotpatch.id) (baseline \(hotpatch.baseline), level \(hotpatch.level)): " + modules.joined(separator: "; ")
              + "; run 'hotpatch-pack publish' to sign")
    }

    private func hotpatchRelease(_ kernel: [ChannelIndex.KernelModule]) -> ChannelIndex.Release {
        .hotpatch(id: hotpatch.id, baseline: hotpatch.baseline, level: hotpatch.level, description: text.description, cves: text.cves,
                  targets: [], kernel: kernel)
    }

    /// Reads one group's module and kernel build-id and checks them against each other; `label`
    /// prefixes an error when there are several groups.
    private static func plan(_ group: KernelGroup, folder: String, label: String) throws -> ChannelIndex.KernelModule {
        if let problem = KernelNames.problemWithRelease(group.release) {
            throw PackError("\(label)--kernel-release '\(group.release)' \(problem)")
        }
        let info: KernelModuleInfo
        do { info = try KernelModuleInfo.read(path: group.module) } catch {
            throw PackError("\(label)\(error)")
        }
        guard info.isLivePatch else {
            throw PackError("\(label)\(group.module) is not a kernel live patch module: its .modinfo has no livepatch=Y (a livepatch module declares MODULE_INFO(livepatch, \"Y\"))")
        }
        guard let name = info.name else {
            throw PackError("\(label)\(group.module) has no name= in its .modinfo; build it with Kbuild, which records the module's name")
        }
        if let problem = KernelNames.problemWithModuleName(name) {
            throw PackError("\(label)\(group.module): module name '\(name)' \(problem)")
        }
        guard let built = info.vermagicRelease else {
            throw PackError("\(label)\(group.module) has no vermagic= in its .modinfo, so the kernel it was built for is unknown")
        }
        guard built == group.release else {
            throw PackError("\(label)\(group.module) was built for kernel \(built) (its vermagic), not --kernel-release \(group.release)")
        }
        let buildID = try group.buildID(label: label)
        let bytes: [UInt8]
        do { bytes = try Files.read(group.module, limit: 1 << 30) } catch { throw PackError(error) }
        let reference = ChannelIndex.FileReference(path: "\(folder)/\(Files.baseName(group.module))",
                                                   sha256: ChannelKeys.sha256(bytes), length: UInt64(bytes.count))
        return ChannelIndex.KernelModule(release: group.release, buildID: buildID, livepatch: name, module: reference)
    }
}

/// One module of a kernel release as given on the command line: `--module FILE.ko` and the
/// options after it up to the next `--module`.
struct KernelGroup: Equatable, Sendable {
    /// Its position on the command line, from 1 (for messages).
    var number: Int
    /// The module file.
    var module: String
    /// `--kernel-release`.
    var release: String
    /// `--kernel-build-id`, when given.
    var buildIDText: String?
    /// `--kernel-notes`, when given.
    var notesFile: String?

    /// `module group N (--module FILE.ko)`, for messages.
    var label: String { "module group \(number) (--module \(module))" }

    /// The kernel's build-id, from the hex given or read from the notes file.
    func buildID(label: String) throws -> BuildID {
        if let buildIDText {
            guard let buildID = BuildID(hex: buildIDText) else {
                throw PackError("\(label)--kernel-build-id '\(buildIDText)' is not hex; give the kernel's GNU build-id as /sys/kernel/notes or readelf -n vmlinux shows it (e.g. 3f1c0a…)")
            }
            return buildID
        }
        guard let notesFile else { throw PackError("\(label)give --kernel-build-id HEX or --kernel-notes FILE") }
        let bytes: [UInt8]
        do { bytes = try Files.read(notesFile, limit: 1 << 30) } catch { throw PackError(error) }
        let found: BuildID?
        do { found = try KernelBuildID.find(in: bytes, path: notesFile) } catch {
            throw PackError("\(label)--kernel-notes \(notesFile) is neither a copy of /sys/kernel/notes nor a vmlinux: \(error)")
        }
        guard let found else {
            throw PackError("\(label)--kernel-notes \(notesFile) holds no GNU build-id note; give a copy of /sys/kernel/notes or the kernel's vmlinux")
        }
        return found
    }
}

/// Splits `hotpatch-pack kernel`'s arguments into module groups (see `OptionGroups`).
enum KernelGroups {
    /// The options that belong to a module group.
    static let groupOptions: Set<String> = ["--module", "--kernel-release", "--kernel-build-id", "--kernel-notes"]

    /// The groups of `arguments`. Throws, naming the group, when an option comes before the first
    /// of several `--module`s, or a group has not exactly one `--kernel-release` and exactly one of
    /// `--kernel-build-id` and `--kernel-notes`.
    static func parse(_ arguments: [String]) throws(PackError) -> [KernelGroup] {
        let raw = try OptionGroups(options: groupOptions, starter: "--module", valueName: "FILE.ko", noun: "module").split(arguments)
        guard !raw.isEmpty else { throw PackError("give --module FILE.ko: the kernel live patch module") }
        return try raw.enumerated().map { (offset, options) throws(PackError) in
            let module = options[0].value
            let label = "module group \(offset + 1) (--module \(module))"
            func values(_ option: String) -> [String] { options.filter { $0.option == option }.map(\.value) }
            let releases = values("--kernel-release")
            guard releases.count == 1 else {
                throw PackError(releases.isEmpty ? "\(label): give --kernel-release RELEASE, the kernel (uname -r) this module is for"
                                                 : "\(label): --kernel-release is given \(releases.count) times; give it once per module")
            }
            let ids = values("--kernel-build-id"), notes = values("--kernel-notes")
            guard ids.count + notes.count == 1 else {
                throw PackError(ids.isEmpty && notes.isEmpty
                                ? "\(label): give --kernel-build-id HEX or --kernel-notes FILE: the build-id of the kernel this module is for"
                                : "\(label): give one --kernel-build-id or one --kernel-notes per module, not \(ids.count + notes.count)")
            }
            return KernelGroup(number: offset + 1, module: module, release: releases[0], buildIDText: ids.first, notesFile: notes.first)
        }
    }
}
