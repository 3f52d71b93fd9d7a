import ArgumentParser
import Artifact
import Foundation
import LinuxSystem

/// `hotpatch-pack build-deb`: a hotpatch generated from a fix for a Debian package's objects as
/// Debian shipped them.
struct BuildDebCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build-deb",
        abstract: "Add a hotpatch generated from a fix for a Debian package, for its objects as shipped.",
        discussion: """
            Source: apt-get source --only-source SRC=V into the work directory (dpkg-source unpacks \
            it and applies Debian's own patches; apt needs a deb-src entry, see docs/PUBLISHING.md), \
            or dpkg-source -x of a local --dsc FILE (with its tarballs next to it). Each --diff \
            applies with patch -p1 in the unpacked tree (paths such as expat/lib/xmlparse.c).

            Shipped objects: apt-get download PKG=V of each binary package of the source (the \
            .dsc's runtime packages: not -dev, -doc, -dbg or udebs; or the --binary packages), into \
            a directory of their own, or the --deb files; each extracted with dpkg-deb -x. The \
            targets are their ELF executables and shared objects; a package with none is skipped \
            and the report says so. Each is found in the builds by its file name, as \
            'hotpatch-pack build' finds a --target, and the release names it by its build-id and \
            its path in the package.

            Build dependencies: dpkg-checkbuilddeps in the tree; missing ones are refused, listed \
            with the command that installs them, unless --install-build-deps (apt-get build-dep -y, \
            as root).

            Builds: three, each with DEB_BUILD_OPTIONS='nocheck parallel=N' (N = cores) and \
            SOURCE_DATE_EPOCH from debian/changelog, running debian/rules build (flags from \
            dpkg-buildflags inside debian/rules). First the package's own build, no compiler \
            wrapper: a shipped object it makes again (byte-identical, or the same GNU build-id and \
            loaded bytes) is reported reproducible, and its unstripped rebuild is the debug file of \
            the stripped shipped object (Debian's -dbgsym packages need not be reachable). Then \
            the builds of 'hotpatch-pack build' through its compiler wrapper (CC), as shipped and \
            with the diffs applied, which the generator compares function by function.

            Work directory: --work-dir DIR keeps everything (source, shipped packages, the three \
            builds) and reuses it on the next run: a manifest records the inputs of each part \
            (package, version, .dsc and --deb hashes, the diffs' hash, the compiler and this \
            recipe), and only a part whose inputs changed is made again (a new diff rebuilds the \
            patched build only). Without it, a temporary directory, removed at the end (left in \
            place after a failed build, with its output).

            Not hotpatchable (any refusal of the generator: changed data, a struct layout, source \
            that does not match the shipped object, nothing to patch): exit status 1, nothing \
            written to the channel; ship the update as a fix instead (hotpatch-pack fix --deb \
            V'.deb), and the agent asks for a reboot.

            --with-deb FILE (repeatable): the fixed packages (V') the release carries, as for \
            'hotpatch-pack build': the agent patches the running processes, then installs them, \
            and asks for no reboot.

            The report (text, or --json) is 'hotpatch-pack build's, plus the source package, \
            version, shipped packages and objects (path, build-id, reproducible, debug file) and \
            the time of each step (fetch-source, build-deps, fetch-shipped, reference-build, \
            original-build, patched-build, generation), with the reused ones marked.

            Example:
              hotpatch-pack build-deb --channel ./channel --id 2025.1-hp4 --baseline 2025.1 --level 4 \\
                  --package expat --version 2.5.0-1+deb12u2 --binary libexpat1 \\
                  --diff ./expat-CVE.diff --install-build-deps --work-dir ./work-expat \\
                  --with-deb ./libexpat1_2.5.0-1+deb12u5_amd64.deb \\
                  --cve CVE-2024-45492 --description 'expat: XML_ParseBuffer bounds'
            """
    )

    @OptionGroup var channel: ChannelOption

    @OptionGroup var release: HotpatchLevelOptions

    @Option(help: ArgumentHelp("The source package (as apt-get source names it).", valueName: "SRC"))
    var package: String

    @Option(help: ArgumentHelp("The version hosts run, as shipped (an epoch included: 1:1.2.13.dfsg-1).", valueName: "V"))
    var version: String

    @Option(help: ArgumentHelp("A unified diff of the fix, applied with -p1 in the unpacked source (repeatable, in order).",
                               valueName: "FIX.diff"))
    var diff: [String] = []

    @Option(help: ArgumentHelp("A binary package whose objects to patch (repeatable; default: the source's runtime packages).",
                               valueName: "PKG"))
    var binary: [String] = []

    @Option(help: ArgumentHelp("A local source package to unpack instead of apt-get source.", valueName: "FILE.dsc"))
    var dsc: String?

    @Option(help: ArgumentHelp("A shipped binary package at V, instead of apt-get download (repeatable).", valueName: "FILE.deb"))
    var deb: [String] = []

    @Flag(help: "Install missing build dependencies with apt-get build-dep (as root).")
    var installBuildDeps = false

    @Option(help: ArgumentHelp("Keep the work here and reuse it on the next run with the same inputs.", valueName: "DIR"))
    var workDir: String?

    @OptionGroup var text: ReleaseTextOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var withDeb: WithDebOptions

    func validate() throws {
        guard !diff.isEmpty else { throw ValidationError("give --diff FIX.diff: the fix, as a unified diff") }
        guard !package.isEmpty, !package.contains(" "), !package.contains("=") else { throw ValidationError("--package \(package) is not a source package name") }
        guard !version.isEmpty, !version.contains(" ") else { throw ValidationError("--version '\(version)' is not a Debian version") }
        guard deb.isEmpty || binary.isEmpty else { throw ValidationError("give --binary PKG (downloaded) or --deb FILE (at hand), not both") }
    }

    func run() throws {
        let workspace = ChannelWorkspace(directory: channel.channel)
        let addition = release.addition(text: text, providers: [], withDeb: withDeb)
        // The channel is checked before the fetches and builds, which may take long, and again when writing.
        _ = try addition.checkIndex(of: workspace)
        try checkCarriedPackagesAreTheUpdate()

        var request = DebianBuildRequest(package: package, version: version, diffs: diff)
        request.binaries = binary
        request.dsc = dsc
        request.debs = deb
        request.installBuildDependencies = installBuildDeps
        request.workDirectory = workDir
        let progress: (String) -> Void = { Standard.error("hotpatch-pack build-deb: " + $0) }
        let prepared = try DebianPackageBuild.prepare(request, progress: progress)
        defer { prepared.work.remove() }

        var report = DebianBuildReport(sourcePackage: package, version: version, shipped: prepared.shipped, steps: prepared.steps,
                                       build: nil, workDirectory: prepared.work.isKept ? prepared.work.root : nil)
        let start = Date()
        let outcome: GeneratedRelease.Outcome
        do {
            outcome = try GeneratedRelease.generate(prepared.builds, pathHints: prepared.targetPaths, release: release, addition: addition,
                                                    workspace: workspace, channel: channel.channel, progress: progress)
        } catch {
            // Not a refusal (those come back in the outcome): the channel, the disk or an object
            // failed, which says nothing about whether the fix can be hotpatched.
            print(json ? report.json() : report.text())
            throw PackError("Failed to generate or add the hotpatch: \(error); nothing was written to \(channel.channel)")
        }
        report.steps.append(DebianBuildStep(name: "generation", seconds: (Date().timeIntervalSince(start) * 10).rounded() / 10, reused: false))
        report.build = outcome.report
        print(json ? report.json() : report.text())
        if let refusal = outcome.refusal {
            throw PackError("Not hotpatchable: \(refusal). \(fixAdvice)")
        }
    }

    /// Refuses `--with-deb` packages that are not the update of this source package: another
    /// source's, or one not newer than `--version` (the shipped V itself would leave every host's
    /// disk vulnerable while the agent reports the package installed).
    func checkCarriedPackagesAreTheUpdate() throws {
        for carried in try withDeb.packages() {
            guard carried.sourceName == package else {
                throw PackError("--with-deb \(carried.path): \(carried.name) \(carried.version) is built from source package \(carried.sourceName), not \(package): carry the fixed binary packages of \(package)")
            }
            guard try DebianTools.isVersion(carried.sourceVersion, newerThan: version) else {
                throw PackError("--with-deb \(carried.path): \(carried.name) is from \(package) \(carried.sourceVersion), not newer than --version \(version): carry the fixed update (V'), not the version hosts run")
            }
        }
    }

    /// What the publisher does with an update that cannot be hotpatched: the `--with-deb`
    /// packages, when given, are the fix's.
    var fixAdvice: String {
        let debs = withDeb.debs.isEmpty ? "--deb PKG_V'.deb (each binary package of \(package) at the fixed version)"
            : withDeb.debs.map { "--deb \($0)" }.joined(separator: " ")
        return "Ship the update as a fix instead: hotpatch-pack fix --channel \(channel.channel) --id ID --baseline \(release.baseline) \(debs); hosts install it and the agent asks for a reboot"
    }
}
