import Artifact
import Foundation
import LinuxSystem

/// What `hotpatch-pack build` was asked to build.
package struct BuildRequest: Sendable {
    /// The released source tree (`--source`).
    package var source: String
    /// The fix, as unified diffs applied in order (`--diff`).
    package var diffs: [String]
    /// The build command, run with `sh -c` in each copy's root (`--build`).
    package var command: String
    /// The released objects to patch (`--target`).
    package var targets: [String]
    /// Debug files of stripped targets, each paired with the target of its build-id (`--debug-file`).
    package var debugFiles: [String]
    /// Where to keep the work directory (`--keep-work`); nil for a temporary one.
    package var keepWork: String?
}

/// One `--target`, found in both builds: what the generator gets, and what the report says.
package struct PreparedTarget: Sendable {
    /// The generator's input.
    package var builds: TargetBuilds
    /// The released object's build-id.
    package var buildID: BuildID
    /// Whether the unpatched rebuild is byte-identical to the released object.
    package var isReproducible: Bool
}

/// Both builds made, every target found in them.
package struct PreparedBuilds: Sendable {
    /// The work directory (the caller removes it when it is not kept).
    package var work: WorkDirectory
    /// The build of the source as released, and the one with the diffs applied.
    package var original: SourceBuild
    package var patched: SourceBuild
    /// One per `--target`, in order.
    package var targets: [PreparedTarget]
}

/// The build half of `hotpatch-pack build`: reads the diffs and the released objects, copies the
/// source twice, applies the diffs to one copy, builds both through the compiler wrapper, and finds
/// each target in both builds. Everything it writes is in the work directory.
package enum BuildDriver {
    /// Prepares the generator's inputs for `request`; `progress` gets one line per step (for
    /// stderr). On a failure the work directory is removed, unless it is kept or a build failed
    /// (its output is then left there for inspection, and the error says where).
    package static func prepare(_ request: BuildRequest, progress: (String) -> Void = { _ in }) throws(PackError) -> PreparedBuilds {
        // Everything that can be checked without building, first.
        let diffs = try request.diffs.map { path throws(PackError) in try UnifiedDiff.load(path: path) }
        let released = try request.targets.map { path throws(PackError) in try TargetLocator.loadReleased(path) }
        let debugFiles = try pairDebugFiles(request.debugFiles, with: released)
        guard let info = try? Files.status(request.source) else { throw PackError("--source \(request.source) does not exist") }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw PackError("--source \(request.source) is not a directory: give the root of the released source tree")
        }

        let work = try WorkDirectory.create(kept: request.keepWork, source: request.source)
        do {
            progress("work directory \(work.root)\(work.isKept ? " (kept)" : "")")
            try SourceTrees.copy(request.source, to: work.patched)
            try SourceTrees.apply(diffs, to: work.patched)
            progress("applied \(diffs.count) diff\(diffs.count == 1 ? "" : "s"): \(diffs.flatMap { $0.files.map(\.path) }.joined(separator: ", "))")
            try SourceTrees.copy(request.source, to: work.original)
            let wrapper = try CompilerWrapper.write(into: work.wrapperFolder, log: work.root + "/compiles.log")
            let environment = wrapper.environment()
            let original = try build(work.original, named: "original", label: "the build of the source as released",
                                     command: request.command, environment: environment, wrapper: wrapper, work: work, progress: progress)
            let patched = try build(work.patched, named: "patched", label: "the build of the source with the diffs applied",
                                    command: request.command, environment: environment, wrapper: wrapper, work: work, progress: progress)
            var targets: [PreparedTarget] = []
            for (number, elf) in released.enumerated() {
                targets.append(try prepareTarget(elf, number: number + 1, debugFile: debugFiles[number],
                                                 original: original, patched: patched, work: work))
            }
            return PreparedBuilds(work: work, original: original, patched: patched, targets: targets)
        } catch let failure as BuildFailure {
            throw PackError(failure.error.description + (work.isKept ? "" : "\n(the work directory \(work.root) is left for inspection; remove it when done)"))
        } catch {
            work.remove()
            throw (error as? PackError) ?? PackError("\(error)")
        }
    }

    /// A failed build, which leaves the work directory in place.
    struct BuildFailure: Error {
        var error: PackError
    }

    /// Builds the copy at `copy`: moves it to the work directory's build path (both builds run at
    /// the same absolute path), runs the command, moves it back, and reads what the wrapper logged.
    static func build(_ copy: String, named name: String, label: String, command: String, environment: [String: String],
                              wrapper: CompilerWrapper, work: WorkDirectory, progress: (String) -> Void) throws -> SourceBuild {
        progress("running \(label) in \(work.buildPath)")
        do throws(SystemError) { try Files.rename(copy, to: work.buildPath) } catch { throw PackError(error) }
        do {
            try BuildRunner.run(command, in: work.buildPath, environment: environment, log: work.buildLog(name), label: label)
        } catch {
            throw BuildFailure(error: error)
        }
        let log = work.root + "/\(name)-compiles.log"
        do throws(SystemError) {
            try Files.rename(work.buildPath, to: copy)
            if FileManager.default.fileExists(atPath: wrapper.log) { try Files.rename(wrapper.log, to: log) }
        } catch {
            throw PackError(error)
        }
        let objects = try CompilerWrapper.compiledObjects(log: log, buildRoot: work.buildPath, finalRoot: copy)
        guard !objects.isEmpty else {
            throw PackError("\(label.prefix(1).uppercased() + label.dropFirst()) compiled nothing through the compiler wrapper (CC=\(wrapper.cc), CXX=\(wrapper.cxx)): the build must compile its sources with $CC and $CXX. A Makefile that sets CC itself overrides the environment: pass them on make's command line, --build 'make CC=\"$CC\" CXX=\"$CXX\"'. A source tree whose objects are built already compiles nothing: give a clean tree, or start --build with 'make clean &&' (its output is in \(work.buildLog(name)))")
        }
        progress("\(label): \(objects.count) object\(objects.count == 1 ? "" : "s") compiled")
        return SourceBuild(root: copy, compiledObjects: objects)
    }

    /// Finds one target in both builds and checks the rebuilds against it.
    static func prepareTarget(_ released: ELFFile, number: Int, debugFile: String?, original: SourceBuild,
                                      patched: SourceBuild, work: WorkDirectory) throws(PackError) -> PreparedTarget {
        guard let buildID = released.buildID else {
            throw PackError("--target \(released.path) has no GNU build-id note, which hosts find it by (link it with -Wl,--build-id)")
        }
        let originalPath = try TargetLocator.locate(released, under: original.root, build: "the build of the source as released")
        let patchedPath = try TargetLocator.locate(released, under: patched.root, build: "the build with the diffs applied")
        _ = try TargetLocator.checkRebuild(originalPath, of: released, build: "the build of the source as released")
        _ = try TargetLocator.checkRebuild(patchedPath, of: released, build: "the build with the diffs applied")
        let folder = work.targetFolder(number, name: Files.baseName(released.path))
        do throws(SystemError) { try Files.makeDirectories(folder, mode: 0o755) } catch { throw PackError(error) }
        let builds = TargetBuilds(releasedPath: absolute(released.path), debugFilePath: debugFile.map(absolute),
                                  originalObjectPath: originalPath, original: original,
                                  patchedObjectPath: patchedPath, patched: patched, workDirectory: folder)
        return PreparedTarget(builds: builds, buildID: buildID,
                              isReproducible: TargetLocator.isByteIdentical(released.path, originalPath))
    }

    /// Each `--debug-file` paired with the target of the same build-id (index by index; nil where
    /// a target has none). Throws for a debug file that matches no target, or two for one target.
    static func pairDebugFiles(_ paths: [String], with targets: [ELFFile]) throws(PackError) -> [String?] {
        var paired = [String?](repeating: nil, count: targets.count)
        for path in paths {
            let debug: ELFFile
            do { debug = try ELFFile.load(path: path) } catch { throw PackError("--debug-file \(path): \(error)") }
            guard let index = targets.firstIndex(where: { $0.buildID != nil && $0.buildID == debug.buildID }) else {
                throw PackError("--debug-file \(path) (build-id \(debug.buildID?.description ?? "none")) belongs to no --target: a debug file is paired with the target of its build-id")
            }
            if let other = paired[index] {
                throw PackError("--debug-file \(path) and \(other) both belong to --target \(targets[index].path); give one")
            }
            paired[index] = path
        }
        return paired
    }

    /// `path` made absolute against the current directory, `.` and `..` removed.
    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}
