import Artifact
import Foundation
import Glibc
import LinuxSystem

/// What `hotpatch-pack build-deb` was asked to build.
package struct DebianBuildRequest: Sendable {
    /// The source package (`--package`) and its version as shipped (`--version`).
    package var package: String
    package var version: String
    /// The fix, as unified diffs applied in order with -p1 in the unpacked source (`--diff`).
    package var diffs: [String]
    /// The binary packages whose objects are the targets (`--binary`); empty: the `.dsc`'s
    /// runtime packages.
    package var binaries: [String] = []
    /// A local `.dsc` to unpack instead of `apt-get source` (`--dsc`).
    package var dsc: String?
    /// Shipped packages given instead of `apt-get download` (`--deb`).
    package var debs: [String] = []
    /// Whether missing build dependencies are installed (`--install-build-deps`).
    package var installBuildDependencies = false
    /// The kept, reused work directory (`--work-dir`); nil for a temporary one.
    package var workDirectory: String?

    /// A request.
    package init(package: String, version: String, diffs: [String]) {
        self.package = package
        self.version = version
        self.diffs = diffs
    }
}

/// One object of a shipped package, and what the reference build said of it.
package struct ShippedObject: Codable, Sendable, Equatable {
    /// Its path on hosts (`/usr/lib/x86_64-linux-gnu/libexpat.so.1.8.10`).
    package var path: String
    /// Its file as extracted from the package, in the work directory.
    package var file: String
    /// Its GNU build-id.
    package var buildId: String
    /// Whether the package's own build (no compiler wrapper) made the same object: byte-identical,
    /// or the same build-id and the same loaded bytes (the shipped one stripped).
    package var reproducible: Bool
    /// The unstripped rebuild used as its debug file (nil: none matched).
    package var debugFile: String?
    /// Why it is not a target (not made by the build), nil when it is one.
    package var skipped: String?
}

/// One shipped binary package.
package struct ShippedPackage: Codable, Sendable, Equatable {
    /// Its name (`libexpat1`).
    package var name: String
    /// The `.deb` its files came from.
    package var deb: String
    /// Its ELF executables and shared objects.
    package var objects: [ShippedObject]
    /// Why none of its files is a target (no ELF object), nil when some are.
    package var skipped: String?
}

/// One step of build-deb and how long it took.
package struct DebianBuildStep: Codable, Sendable, Equatable {
    /// `fetch-source`, `build-deps`, `fetch-shipped`, `reference-build`, `original-build`,
    /// `patched-build`, `generation`.
    package var name: String
    /// Wall-clock seconds.
    package var seconds: Double
    /// Whether the work directory's earlier result was used instead.
    package var reused: Bool
}

/// Everything `build-deb` prepared for the generator.
package struct DebianPreparedBuild: Sendable {
    /// The work directory.
    package var work: DebianWorkDirectory
    /// The source package's control file.
    package var control: DebianSourceControl
    /// The shipped packages and their objects.
    package var shipped: [ShippedPackage]
    /// The generator's inputs: both wrapped builds and one target per shipped object built.
    package var builds: PreparedBuilds
    /// The host path of each of `builds.targets`, in order.
    package var targetPaths: [String]
    /// The steps so far, timed.
    package var steps: [DebianBuildStep]
}

/// The build half of `hotpatch-pack build-deb`: the source package at the shipped version, the
/// shipped binaries, the build dependencies, the package's own build (debug files, reproducible
/// or not), and the two builds through the compiler wrapper, as `BuildDriver` makes them for
/// `hotpatch-pack build`. Everything it writes is in the work directory.
package enum DebianPackageBuild {
    /// The version of what follows; a work directory made by another recipe is built again.
    package static let recipeVersion = 1

    /// The command each build runs in the unpacked source's root: Debian's build target, with
    /// the environment dpkg-buildpackage gives it that matters to the compiled code
    /// (SOURCE_DATE_EPOCH from the changelog); the flags come from dpkg-buildflags inside
    /// debian/rules, tests are left out.
    package static func buildCommand(parallel: Int) -> String {
        "export DEB_BUILD_OPTIONS='nocheck parallel=\(parallel)'; "
            + #"[ -n "${SOURCE_DATE_EPOCH:-}" ] || export SOURCE_DATE_EPOCH="$(dpkg-parsechangelog -STimestamp)"; "#
            + "[ -x debian/rules ] || chmod +x debian/rules; debian/rules build"
    }

    /// The sources file that makes the source packages of bookworm reachable.
    package static let sourcesFileAdvice = """
        add a deb-src entry, e.g. the file /etc/apt/sources.list.d/hotpatch-deb-src.sources:
          Types: deb-src
          URIs: http://deb.debian.org/debian
          Suites: bookworm bookworm-updates
          Components: main
          Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
        then run apt-get update (or give --dsc FILE: a source package at hand)
        """

    /// Prepares the generator's inputs; `progress` gets one line per step (for stderr). On a
    /// failure a temporary work directory is removed, unless a build failed (its output is then
    /// left there, and the error says where); a kept one stays.
    package static func prepare(_ request: DebianBuildRequest, progress: (String) -> Void = { _ in }) throws(PackError) -> DebianPreparedBuild {
        // What can be checked without fetching or building, first.
        let diffs = try request.diffs.map { path throws(PackError) in try UnifiedDiff.load(path: path) }
        for path in [request.dsc].compactMap({ $0 }) + request.debs where (try? Files.status(path)) == nil {
            throw PackError("\(path) does not exist")
        }
        let diffKey = try DebianTools.sha256(request.diffs).joined(separator: ",")
        let sourceKey = try request.dsc.map { dsc throws(PackError) in
            "dsc \(request.package)=\(request.version) \(try DebianTools.sha256([dsc])[0])"
        } ?? "apt \(request.package)=\(request.version)"
        let recipeKey = "\(sourceKey) recipe \(recipeVersion) \(try compilerVersion())"

        var work = try DebianWorkDirectory.open(kept: request.workDirectory)
        var steps: [DebianBuildStep] = []
        func timed<T>(_ name: String, reused: Bool, _ body: () throws -> T) throws -> T {
            let start = Date()
            let value = try body()
            steps.append(DebianBuildStep(name: name, seconds: (Date().timeIntervalSince(start) * 10).rounded() / 10, reused: reused))
            return value
        }
        do {
            progress("work directory \(work.root)\(work.isKept ? " (kept, reused where its inputs are the same)" : "")")
            // 1. The source package, unpacked with Debian's patches applied.
            let sourceReused = work.isMade(.source, key: sourceKey)
            let control: DebianSourceControl = try timed("fetch-source", reused: sourceReused) {
                if !sourceReused {
                    if !work.manifest.parts.isEmpty { progress("the work directory holds another source package or version: starting it again") }
                    for part in DebianWorkDirectory.Part.allCases { try work.forget(part) }
                    for folder in [work.sourceFolder, work.shippedPackages, work.root + "/shipped", work.reference, work.generate.root] {
                        try DebianWorkDirectory.clear(folder)
                        do throws(SystemError) { try Files.makeDirectories(folder, mode: 0o755) } catch { throw PackError(error) }
                    }
                    try fetchSource(request, into: work.sourceFolder, progress: progress)
                    try work.record(.source, key: sourceKey)
                } else {
                    progress("source package \(request.package) \(request.version): reused from the work directory")
                }
                return try readControl(in: work.sourceFolder, request: request)
            }
            let tree = work.sourceFolder + "/" + control.unpackedDirectoryName
            guard (try? Files.status(tree + "/debian/rules")) != nil else {
                throw PackError("The source package \(request.package) \(request.version) did not unpack into \(tree) with a debian/rules: is it a Debian source package?")
            }

            // 2. Build dependencies.
            try timed("build-deps", reused: false) {
                try checkBuildDependencies(tree, request: request, progress: progress)
            }

            // 3. The shipped packages, in a directory of their own.
            let architecture = try DebianTools.architecture()
            let binaries = request.binaries.isEmpty ? control.runtimePackages(architecture: architecture) : request.binaries
            if request.debs.isEmpty && binaries.isEmpty {
                throw PackError("The source package \(request.package) lists no binary package for \(architecture) that hosts run; name them with --binary PKG, or give --deb FILE")
            }
            let debSums = try DebianTools.sha256(request.debs)
            let shippedKey = "\(sourceKey) " + (request.debs.isEmpty ? "apt " + binaries.joined(separator: ",") : "debs " + debSums.joined(separator: ","))
            let shippedReused = work.isMade(.shipped, key: shippedKey)
            var shipped: [ShippedPackage] = try timed("fetch-shipped", reused: shippedReused) {
                if !shippedReused {
                    try work.forget(.shipped)
                    try DebianWorkDirectory.clear(work.shippedPackages)
                    try DebianWorkDirectory.clear(work.root + "/shipped")
                    try fetchShipped(request, binaries: binaries, into: work, progress: progress)
                    try work.record(.shipped, key: shippedKey)
                } else {
                    progress("shipped packages: reused from the work directory")
                }
                return try readShipped(work)
            }
            guard shipped.contains(where: { !$0.objects.isEmpty }) else {
                throw PackError("No shipped package of \(request.package) \(request.version) holds an ELF executable or shared object (\(shipped.map { "\($0.name): \($0.skipped ?? "")" }.joined(separator: "; "))): there is nothing to hotpatch; ship the update as a fix")
            }

            // 4. The diffs applied to a copy first: a diff that does not apply stops before any build.
            let generate = work.generate
            let patchedKey = "\(recipeKey) diffs \(diffKey)"
            let patchedReused = work.isMade(.patched, key: patchedKey) && (try? Files.status(generate.patched)) != nil
            if !patchedReused {
                try work.forget(.patched)
                try DebianWorkDirectory.clear(generate.patched)
                try DebianWorkDirectory.clear(generate.buildPath)
                try SourceTrees.copy(tree, to: generate.patched)
                try SourceTrees.apply(diffs, to: generate.patched)
                progress("applied \(diffs.count) diff\(diffs.count == 1 ? "" : "s"): \(diffs.flatMap { $0.files.map(\.path) }.joined(separator: ", "))")
            }

            // 5. The package's own build, then the two through the compiler wrapper.
            let command = buildCommand(parallel: max(1, ProcessInfo.processInfo.activeProcessorCount))
            let referenceReused = work.isMade(.reference, key: recipeKey) && (try? Files.status(work.reference)) != nil
            try timed("reference-build", reused: referenceReused) {
                guard !referenceReused else { return progress("the package's own build: reused from the work directory") }
                try work.forget(.reference)
                try DebianWorkDirectory.clear(work.reference)
                try SourceTrees.copy(tree, to: work.reference)
                progress("running the package's own build (no compiler wrapper: it makes the debug files) in \(work.reference)")
                do throws(PackError) {
                    try BuildRunner.run(command, in: work.reference, environment: ProcessInfo.processInfo.environment,
                                        log: work.referenceLog, label: "the package's own build of the source as shipped")
                } catch {
                    throw BuildDriver.BuildFailure(error: error)
                }
                try work.record(.reference, key: recipeKey)
            }
            let wrapper = try CompilerWrapper.write(into: generate.wrapperFolder, log: generate.root + "/compiles.log")
            let environment = wrapper.environment()
            let originalReused = work.isMade(.original, key: recipeKey) && (try? Files.status(generate.original)) != nil
            let original = try timed("original-build", reused: originalReused) { () throws -> SourceBuild in
                if originalReused {
                    progress("the build of the source as shipped: reused from the work directory")
                    return try builtBefore("original", in: generate)
                }
                try work.forget(.original)
                try DebianWorkDirectory.clear(generate.original)
                try DebianWorkDirectory.clear(generate.buildPath)
                try SourceTrees.copy(tree, to: generate.original)
                let build = try BuildDriver.build(generate.original, named: "original", label: "the build of the source as shipped",
                                                  command: command, environment: environment, wrapper: wrapper, work: generate, progress: progress)
                try work.record(.original, key: recipeKey)
                return build
            }
            let patched = try timed("patched-build", reused: patchedReused) { () throws -> SourceBuild in
                if patchedReused {
                    progress("the build with the diffs applied: reused from the work directory (same diffs)")
                    return try builtBefore("patched", in: generate)
                }
                let build = try BuildDriver.build(generate.patched, named: "patched", label: "the build of the source with the diffs applied",
                                                  command: command, environment: environment, wrapper: wrapper, work: generate, progress: progress)
                try work.record(.patched, key: patchedKey)
                return build
            }

            // 6. Each shipped object: its debug file, and its rebuilds.
            try DebianWorkDirectory.clear(generate.root + "/targets")
            try DebianWorkDirectory.clear(generate.root + "/publish")
            var targets: [PreparedTarget] = []
            var targetPaths: [String] = []
            for packageIndex in shipped.indices {
                for objectIndex in shipped[packageIndex].objects.indices {
                    var object = shipped[packageIndex].objects[objectIndex]
                    let elf = try TargetLocator.loadReleased(object.file)
                    matchReference(&object, elf, reference: work.reference)
                    do throws(PackError) {
                        targets.append(try BuildDriver.prepareTarget(elf, number: targets.count + 1, debugFile: object.debugFile,
                                                                     original: original, patched: patched, work: generate))
                        targetPaths.append(object.path)
                    } catch {
                        object.skipped = "not a target: \(error)"
                        progress("\(object.path): skipped, the build does not make it")
                    }
                    shipped[packageIndex].objects[objectIndex] = object
                }
            }
            guard !targets.isEmpty else {
                throw PackError("No shipped object of \(request.package) \(request.version) is made by its build: \(shipped.flatMap(\.objects).compactMap(\.skipped).joined(separator: "; "))")
            }
            let builds = PreparedBuilds(work: generate, original: original, patched: patched, targets: targets)
            return DebianPreparedBuild(work: work, control: control, shipped: shipped, builds: builds, targetPaths: targetPaths, steps: steps)
        } catch let failure as BuildDriver.BuildFailure {
            throw PackError(failure.error.description + (work.isKept ? "" : "\n(the work directory \(work.root) is left for inspection; remove it when done)"))
        } catch {
            work.remove()
            throw (error as? PackError) ?? PackError("\(error)")
        }
    }

    /// A wrapped build made by an earlier run, read back from its compile log.
    static func builtBefore(_ name: String, in generate: WorkDirectory) throws(PackError) -> SourceBuild {
        let root = name == "original" ? generate.original : generate.patched
        let objects = try CompilerWrapper.compiledObjects(log: generate.root + "/\(name)-compiles.log", buildRoot: generate.buildPath, finalRoot: root)
        guard !objects.isEmpty else { throw PackError("The work directory's \(name) build (\(root)) records no compiled object; remove --work-dir \(generate.root) and run again") }
        return SourceBuild(root: root, compiledObjects: objects)
    }

    /// The compiler that builds run (its first --version line), part of every build's key: a
    /// build by another compiler is made again.
    static func compilerVersion() throws(PackError) -> String {
        let compiler = ProcessInfo.processInfo.environment["CC"].flatMap { $0.isEmpty ? nil : $0 } ?? "cc"
        let output = try DebianTools.run("sh", ["-c", "\(compiler) --version | head -n 1"])
        return output.trimmed
    }

    /// `apt-get source --only-source SRC=V` in `folder` (which unpacks it with dpkg-source,
    /// Debian's patches applied), or `dpkg-source -x` of `--dsc`.
    static func fetchSource(_ request: DebianBuildRequest, into folder: String, progress: (String) -> Void) throws(PackError) {
        if let dsc = request.dsc {
            let control = try readControl(at: dsc, request: request)
            progress("unpacking \(dsc) with dpkg-source -x")
            let output = try DebianTools.run("dpkg-source", ["-x", BuildDriver.absolute(dsc), folder + "/" + control.unpackedDirectoryName])
            guard output.status == 0 else {
                throw PackError("dpkg-source -x \(dsc) failed (status \(output.status)): \(output.tail())")
            }
            return
        }
        progress("apt-get source --only-source \(request.package)=\(request.version)")
        let output = try DebianTools.run("apt-get", ["source", "--only-source", "\(request.package)=\(request.version)"], in: folder)
        guard output.status == 0, !output.text.contains("\nE: "), !output.text.hasPrefix("E: ") else {
            if output.text.contains("deb-src") {
                throw PackError("apt-get source \(request.package)=\(request.version): apt has no source package index (no deb-src entry); \(sourcesFileAdvice)\napt-get said: \(output.tail(4))")
            }
            if output.text.contains("Can not find version") || output.text.contains("Unable to find a source package") {
                throw PackError("apt-get source: no source package \(request.package) at version \(request.version) in the deb-src suites apt knows (only those suites' sources are reachable: bookworm-security's are not; see docs/PUBLISHING.md); check the name and version (apt-cache showsrc \(request.package)), run apt-get update, or give --dsc FILE\napt-get said: \(output.tail(4))")
            }
            throw PackError("apt-get source \(request.package)=\(request.version) failed (status \(output.status)): \(output.tail())")
        }
    }

    /// The `.dsc` in the source folder, checked against the request.
    static func readControl(in folder: String, request: DebianBuildRequest) throws(PackError) -> DebianSourceControl {
        if let dsc = request.dsc { return try readControl(at: dsc, request: request) }
        let found = ((try? Files.list(folder)) ?? []).filter { $0.hasSuffix(".dsc") }
        guard found.count == 1 else {
            throw PackError("The work directory's source folder \(folder) holds \(found.count) .dsc files (\(found.joined(separator: ", "))); expected the one of \(request.package) \(request.version)")
        }
        return try readControl(at: folder + "/" + found[0], request: request)
    }

    /// The `.dsc` at `path`, which must be the source package and version asked for.
    static func readControl(at path: String, request: DebianBuildRequest) throws(PackError) -> DebianSourceControl {
        let bytes: [UInt8]
        do throws(SystemError) { bytes = try Files.read(path, limit: 4 << 20) } catch { throw PackError("--dsc \(path): \(error)") }
        let control = try DebianSourceControl(text: String(decoding: bytes, as: UTF8.self), path: path)
        guard control.source == request.package, control.version == request.version else {
            throw PackError("\(path) is the source package \(control.source) \(control.version), not \(request.package) \(request.version) (--package, --version)")
        }
        return control
    }

    /// dpkg-checkbuilddeps in the unpacked tree; what is missing is installed with
    /// `apt-get build-dep` when asked, else refused with the list and the command.
    static func checkBuildDependencies(_ tree: String, request: DebianBuildRequest, progress: (String) -> Void) throws(PackError) {
        let check = try DebianTools.run("dpkg-checkbuilddeps", [], in: tree)
        guard check.status != 0 else { return progress("build dependencies: all installed") }
        let unmet = check.text.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: "Unmet build dependencies: ") ?? line.range(of: "Build conflicts: ") else { return nil }
            return String(line[range.upperBound...])
        }.joined(separator: " ")
        let installCommand = request.dsc == nil ? "apt-get build-dep \(request.package)=\(request.version)" : "apt-get build-dep \(tree)"
        guard request.installBuildDependencies else {
            throw PackError("Build dependencies of \(request.package) \(request.version) are missing: \(unmet.isEmpty ? check.tail(4) : unmet). Install them with '\(installCommand)' (as root), or give --install-build-deps")
        }
        progress("installing the build dependencies: \(unmet)")
        var environment = ProcessInfo.processInfo.environment
        environment["DEBIAN_FRONTEND"] = "noninteractive"
        let target = request.dsc == nil ? "\(request.package)=\(request.version)" : tree
        let install = try DebianTools.run("apt-get", ["build-dep", "-y", target], environment: environment)
        guard install.status == 0 else {
            throw PackError("apt-get build-dep -y \(target) failed (status \(install.status)) installing \(unmet): \(install.tail())")
        }
        let again = try DebianTools.run("dpkg-checkbuilddeps", [], in: tree)
        guard again.status == 0 else { throw PackError("Build dependencies still missing after apt-get build-dep: \(again.tail(4))") }
    }

    /// Downloads the binary packages at the shipped version (or takes `--deb`) and extracts each.
    static func fetchShipped(_ request: DebianBuildRequest, binaries: [String], into work: DebianWorkDirectory,
                             progress: (String) -> Void) throws(PackError) {
        do throws(SystemError) {
            try Files.makeDirectories(work.shippedPackages, mode: 0o755)
            try Files.makeDirectories(work.root + "/shipped", mode: 0o755)
        } catch { throw PackError(error) }
        var debs: [String] = []
        if request.debs.isEmpty {
            for binary in binaries {
                progress("apt-get download \(binary)=\(request.version)")
                let output = try DebianTools.run("apt-get", ["download", "\(binary)=\(request.version)"], in: work.shippedPackages)
                guard output.status == 0, !output.text.contains("E: ") else {
                    throw PackError("apt-get download \(binary)=\(request.version) failed: \(output.tail(4)); check the name (--binary), run apt-get update, or give the shipped package with --deb FILE")
                }
            }
            debs = ((try? Files.list(work.shippedPackages)) ?? []).filter { $0.hasSuffix(".deb") }.sorted().map { work.shippedPackages + "/" + $0 }
        } else {
            debs = request.debs.map(BuildDriver.absolute)
        }
        for deb in debs {
            let fields = try DebianTools.run("dpkg-deb", ["--show", "--showformat=${Package}\\n${Version}\\n${Source}", deb])
            let values = fields.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard fields.status == 0, values.count >= 2 else {
                throw PackError("\(deb) is not a Debian binary package: dpkg-deb --show said: \(fields.tail(4))")
            }
            let source = values.count > 2 ? values[2].split(separator: " ").first.map(String.init) ?? "" : ""
            guard values[1] == request.version, source.isEmpty ? values[0] == request.package : source == request.package else {
                throw PackError("\(deb) is \(values[0]) \(values[1]) (source \(source.isEmpty ? values[0] : source)), not a binary package of \(request.package) \(request.version): give the packages as shipped at --version")
            }
            let folder = work.shippedFiles(values[0])
            try DebianWorkDirectory.clear(folder)
            let output = try DebianTools.run("dpkg-deb", ["-x", deb, folder])
            guard output.status == 0 else { throw PackError("dpkg-deb -x \(deb) failed: \(output.tail(4))") }
            do throws(SystemError) {
                try Files.writeAtomically(folder + ".deb-path", bytes: Array(deb.utf8), mode: 0o644)
            } catch { throw PackError(error) }
        }
    }

    /// The extracted shipped packages and their ELF executables and shared objects.
    static func readShipped(_ work: DebianWorkDirectory) throws(PackError) -> [ShippedPackage] {
        let folder = work.root + "/shipped"
        let names = ((try? Files.list(folder)) ?? []).filter { !$0.hasSuffix(".deb-path") }.sorted()
        return names.map { name in
            let root = folder + "/" + name
            let deb = (try? Files.read(root + ".deb-path")).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let objects: [ShippedObject] = TargetLocator.elfFiles(under: root).compactMap { file in
                guard let elf = try? ELFFile.load(path: file), elf.fileType == .executable || elf.fileType == .sharedObject,
                      !file.contains("/usr/lib/debug/") else { return nil }
                return ShippedObject(path: String(file.dropFirst(root.count)), file: file, buildId: elf.buildID?.description ?? "",
                                     reproducible: false, debugFile: nil, skipped: nil)
            }.sorted { $0.path < $1.path }
            return ShippedPackage(name: name, deb: deb, objects: objects,
                                  skipped: objects.isEmpty ? "no ELF executable or shared object in it" : nil)
        }
    }

    /// Finds the shipped object in the package's own build: reproducible when byte-identical, or
    /// of the same build-id with the same loaded bytes; then, when the shipped one has no symbol
    /// table, the rebuild (unstripped) is its debug file.
    static func matchReference(_ object: inout ShippedObject, _ shipped: ELFFile, reference: String) {
        guard let path = try? TargetLocator.locate(shipped, under: reference, build: "the package's own build"),
              let rebuild = try? ELFFile.load(path: path) else { return }
        if TargetLocator.isByteIdentical(shipped.path, path) {
            object.reproducible = true
            return
        }
        guard shipped.buildID != nil, rebuild.buildID == shipped.buildID, sameLoadedBytes(shipped, rebuild) else { return }
        object.reproducible = true
        if shipped.section(named: ".symtab") == nil, rebuild.section(named: ".symtab") != nil {
            object.debugFile = path
        }
    }

    /// Whether every section the loader maps (SHF_ALLOC, with file contents) holds the same bytes
    /// at the same address in both: what stripping leaves unchanged.
    static func sameLoadedBytes(_ first: ELFFile, _ second: ELFFile) -> Bool {
        let loaded = first.sections.filter { $0.flags & 0x2 != 0 && $0.type != 8 && $0.size > 0 }
        guard !loaded.isEmpty else { return false }
        for section in loaded {
            guard let other = second.section(named: section.name), other.address == section.address, other.size == section.size,
                  let count = Int(exactly: section.size),
                  let mine = try? first.bytes(atVirtualAddress: section.address, count: count),
                  let theirs = try? second.bytes(atVirtualAddress: other.address, count: count), mine == theirs else { return false }
        }
        return true
    }
}
