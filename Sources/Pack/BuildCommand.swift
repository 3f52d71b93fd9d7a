import ArgumentParser
import Artifact
import Foundation
import LinuxSystem

/// `hotpatch-pack build`: a hotpatch release generated from the released source and a fix as a diff.
struct BuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Add a hotpatch generated from the released source and a fix given as a diff.",
        discussion: """
            Copies --source twice into a work directory (original/ and patched/), applies each \
            --diff to the patched copy with GNU patch -p1 (unified diffs, diff -u or git diff with \
            a/ b/ prefixes), and runs --build with sh -c in each copy's root: first the source as \
            released, then the patched one, both moved for their build to the same path (the work \
            directory's build/), so the paths the compiler records are the same in both.

            Compiler: the builds run with CC and CXX set to a wrapper in the work directory, which \
            runs the compiler the caller's CC and CXX name (else cc and c++) with the build's own \
            arguments plus -ffunction-sections -fdata-sections, and records each object compiled \
            with -c. CFLAGS and every other variable stay as the caller set them, the same for both \
            builds. make takes CC from the environment unless the Makefile assigns it (CC = gcc): \
            then pass it on make's command line, --build 'make CC="$CC" CXX="$CXX"'. A build that \
            compiles nothing through the wrapper is refused.

            Targets: each --target is a released object (executable or shared library) as hosts \
            run it: offsets, original bytes and build-id come from it, or from the --debug-file of \
            the same build-id when it is stripped. Its rebuild is the regular ELF file (not a \
            symbolic link, not .o or .a) under each build copy with the same file name; if there is \
            none, the one with the same DT_SONAME. None or several is an error that lists them. \
            When the rebuild is byte-identical to the released object the report says "reproducible \
            build"; otherwise the generator matches each function to the released object.

            The generator compares the two builds function by function (modulo relocations) and \
            writes a patch object with the changed and new functions and the callers of changed \
            inlined functions (DWARF, so build with -g). The release is then added exactly as \
            'hotpatch-pack hotpatch' adds one, with the same checks. Changes that cannot be \
            hotpatched (a global's initial value, a struct layout, thread-local layout, source that \
            does not match the released object) are refused with the reason; a refusal, a diff that \
            does not apply, a failed build or a missing target writes nothing to the channel.

            The report (text, or --json) lists per target the rebuilds, whether the build is \
            reproducible, each change (changed-function, new-function, inlined-caller, refused) \
            and the release written. --with-deb FILE.deb (repeatable) adds the fixed Debian \
            packages to the release, as for 'hotpatch-pack hotpatch': the agent installs them once \
            the running processes are patched, with no reboot. The work directory is temporary, or kept with --keep-work DIR \
            (a new or empty directory outside --source); after a failed build it is left in place \
            with the build's whole output.

            Example:
              hotpatch-pack build --channel ./channel --id 2025.1-hp2 --baseline 2025.1 --level 2 \\
                  --source ./libfoo-1.2.3 --diff ./CVE-2025-1234.diff \\
                  --build './configure && make CC="$CC"' \\
                  --target ./released/libfoo.so.1.2.3 --debug-file ./released/libfoo.so.1.2.3.debug \\
                  --cve CVE-2025-1234 --description 'bounds check in parse'
            """
    )

    @OptionGroup var channel: ChannelOption

    @OptionGroup var release: HotpatchLevelOptions

    @Option(help: ArgumentHelp("The released source tree (copied; never changed).", valueName: "DIR"))
    var source: String

    @Option(help: ArgumentHelp("A unified diff of the fix, applied with -p1 in the source's root (repeatable, applied in order).",
                               valueName: "FIX.diff"))
    var diff: [String] = []

    @Option(help: ArgumentHelp("The command that builds the source, run with sh -c in the copy's root, CC and CXX exported.",
                               valueName: "COMMAND"))
    var build: String

    @Option(help: ArgumentHelp("A released object to patch, as hosts run it (repeatable).", valueName: "ELF"))
    var target: [String] = []

    @Option(help: ArgumentHelp("The debug file of a stripped --target, paired with it by build-id (repeatable).", valueName: "ELF"))
    var debugFile: [String] = []

    @OptionGroup var text: ReleaseTextOptions

    @Option(help: ArgumentHelp("Keep the work directory here (a new or empty directory outside --source).", valueName: "DIR"))
    var keepWork: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var withDeb: WithDebOptions

    func validate() throws {
        guard !diff.isEmpty else { throw ValidationError("give --diff FIX.diff: the fix, as a unified diff") }
        guard !target.isEmpty else { throw ValidationError("give --target ELF: the released object to patch") }
        guard !build.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--build is empty: give the command that builds the source") }
        if let duplicate = Dictionary(grouping: target.map(BuildDriver.absolute), by: { $0 }).first(where: { $0.value.count > 1 }) {
            throw ValidationError("--target \(duplicate.key) is given twice")
        }
    }

    func run() throws {
        let workspace = ChannelWorkspace(directory: channel.channel)
        let addition = release.addition(text: text, providers: [], withDeb: withDeb)
        // The channel is checked before the builds, which may take long, and again when writing.
        _ = try addition.checkIndex(of: workspace)

        let request = BuildRequest(source: source, diffs: diff, command: build, targets: target, debugFiles: debugFile, keepWork: keepWork)
        let prepared = try BuildDriver.prepare(request) { Standard.error("hotpatch-pack build: " + $0) }
        defer { prepared.work.remove() }

        let outcome = try GeneratedRelease.generate(prepared, release: release, addition: addition, workspace: workspace,
                                                    channel: channel.channel) { Standard.error("hotpatch-pack build: " + $0) }
        print(json ? outcome.report.json() : outcome.report.text())
        if let refusal = outcome.refusal { throw refusal }
    }
}
