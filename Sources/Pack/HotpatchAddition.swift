import Artifact
import Foundation

/// Adding one hotpatch release to a channel: what `hotpatch-pack hotpatch` (hand-written patch
/// objects) and `hotpatch-pack build` (generated ones) share, so a generated patch passes the
/// same planning and the same pack-time checks (`PublishChecks`) as a hand-written one.
struct HotpatchAddition {
    /// The release's id, baseline and cumulative level.
    var levels: HotpatchLevelOptions
    var id: String { levels.id }
    var baseline: String { levels.baseline }
    var level: Int { levels.level }
    /// Its description and CVE ids.
    var text: ReleaseTextOptions
    /// `--provider` objects, for every group.
    var providers: [String]
    /// `--with-deb` files: the fixed Debian packages the release carries (see `WithDebOptions`).
    var debs: [String] = []

    /// One target of the release as written: its group and its checked plan.
    struct WrittenTarget {
        var group: TargetGroup
        var plan: PlannedTarget
    }

    /// Refuses an id that is taken or malformed, an unknown baseline, a level not above the
    /// baseline's highest, or a `--with-deb` file that is not a Debian binary package; returns the
    /// index read. Safe to call before any work, and again by `add`.
    func checkIndex(of workspace: ChannelWorkspace) throws -> ChannelIndex {
        let index = try workspace.loadIndex()
        try levels.checkNew(in: index, workspace: workspace)
        _ = try CarriedPackage.readAll(debs)
        return index
    }

    /// Plans and checks every group and reads every `--with-deb` package, then copies the patch
    /// objects (and the packages, under `packages/`) into the channel and adds the release to its
    /// (unsigned) index; nothing is written when any group or package is refused, and the copied
    /// files are removed again when the index cannot be saved. Warnings go to `warn`.
    func add(_ groups: [TargetGroup], to workspace: ChannelWorkspace,
             warn: (String) -> Void = { Standard.error("warning: " + $0) }) throws -> [WrittenTarget] {
        var index = try checkIndex(of: workspace)
        let packages = try CarriedPackage.readAll(debs)

        // Every group planned and checked before anything is written.
        var plans: [WrittenTarget] = []
        var warnings: [String] = []
        for group in groups {
            let label = groups.count > 1 ? "\(group.label): " : ""
            let (planned, files) = try Self.plan(group, label: label)
            var plan = planned
            if let earlier = plans.first(where: { $0.plan.buildID == plan.buildID }) {
                throw PackError("\(group.label) names the same object as \(earlier.group.label) (build-id \(plan.buildID)): give each object once, with all its replacements in one group")
            }
            if let earlier = plans.first(where: { Self.fileName($0.group.patch) == Self.fileName(group.patch) }) {
                throw PackError("\(group.label) and \(earlier.group.label) both use a patch object named \(Self.fileName(group.patch)): each target needs a patch object of its own, with its own file name")
            }
            // Pack-time checks of one planned target: the single place every target passes
            // through before the release is written.
            let passed = try Self.checkBeforePublishing(plan, files: files, providers: providers, label: label)
            // The checks may mark functions near_only (a branch into bytes only the far jump covers).
            plan.redirections = passed.redirections
            warnings += (plan.notes + passed.warnings).map { label + $0 }
            plans.append(WrittenTarget(group: group, plan: plan))
        }
        warnings.forEach(warn)

        let folder = "hotpatches/\(id)"
        let folderExisted = FileManager.default.fileExists(atPath: workspace.directory + "/" + folder)
        var entries: [ChannelIndex.Target] = []
        var files: [ChannelIndex.InstallFile] = []
        do {
            for written in plans {
                let object = try workspace.addFile(written.group.patch, at: "\(folder)/\(Self.fileName(written.group.patch))")
                let hint = written.group.pathHint ?? URL(fileURLWithPath: written.group.target).standardizedFileURL.path
                entries.append(ChannelIndex.Target(buildID: written.plan.buildID, pathHint: hint, patchObject: object,
                                                   redirections: written.plan.redirections, references: written.plan.references))
            }
            // A folder of their own: a package's file name cannot collide with a patch object's.
            for package in packages {
                files.append(ChannelIndex.InstallFile(
                    kind: .deb, file: try workspace.addFile(package.path, at: "\(folder)/packages/\(Self.fileName(package.path))")))
            }
            index.releases.append(.hotpatch(id: id, baseline: baseline, level: level, description: text.description,
                                            cves: text.cves, targets: entries, kernel: [], files: files))
            try workspace.save(index)
        } catch {
            if !folderExisted { workspace.removeReleaseFolder(folder) }
            throw error
        }
        return plans
    }

    /// The line `hotpatch-pack hotpatch` prints for a release it added.
    func summary(of written: [WrittenTarget]) -> String {
        let summaries = written.map { $0.plan.redirections.map { "\($0.symbol)→\($0.replacement)" }.joined(separator: ", ") }
        // The files were read when the release was written: the same names and versions.
        let packages = (try? CarriedPackage.readAll(debs)) ?? []
        let carried = packages.isEmpty ? ""
            : "; carries \(packages.map { "\($0.name) \($0.version) (\($0.architecture))" }.joined(separator: ", ")), installed after the patch, no reboot"
        if written.count == 1 {
            return "Added hotpatch \(id) (baseline \(baseline), level \(level)) for build-id \(written[0].plan.buildID): "
                + summaries[0] + carried + "; run 'hotpatch-pack publish' to sign"
        }
        let objects = zip(written, summaries).map { item, summary in "build-id \(item.plan.buildID) (\(item.group.target)): \(summary)" }
        return "Added hotpatch \(id) (baseline \(baseline), level \(level)) for \(written.count) objects: "
            + objects.joined(separator: "; ") + carried + "; run 'hotpatch-pack publish' to sign"
    }

    /// The files a group names, as read for planning and checked afterwards.
    private struct GroupFiles {
        let target: ELFFile
        let debug: ELFFile?
        let patchObject: PatchObject
    }

    /// Plans one group's redirections from its target, debug file and patch object; `label`
    /// prefixes an error when there are several groups. A group whose references were resolved
    /// already (`resolvedReferences`, by the generator) keeps them as they are.
    private static func plan(_ group: TargetGroup, label: String) throws -> (PlannedTarget, GroupFiles) {
        do {
            let files = GroupFiles(target: try ELFFile.load(path: group.target),
                                   debug: try group.debugFile.map { try ELFFile.load(path: $0) },
                                   patchObject: try PatchObject(path: group.patch))
            var plan = try RedirectionPlanner.plan(target: files.target, debugFile: files.debug, patchObject: files.patchObject,
                                                   replacements: group.replacements,
                                                   references: group.resolvedReferences == nil ? group.references : [])
            if let resolved = group.resolvedReferences { plan.references = resolved }
            return (plan, files)
        } catch {
            throw PackError("\(label)\(error)")
        }
    }

    /// The checks every planned target passes before a release is written, so each target of a
    /// release is refused at pack time for what every process would refuse (`PublishChecks`);
    /// returns the redirections as checked (near_only marked) and the warnings.
    private static func checkBeforePublishing(_ plan: PlannedTarget, files: GroupFiles, providers: [String],
                                              label: String) throws -> PublishChecks.Passed {
        do {
            return try PublishChecks.check(target: files.target, debugFile: files.debug, patchObject: files.patchObject,
                                           plan: plan, providers: providers)
        } catch {
            throw PackError("\(label)\(error)")
        }
    }

    private static func fileName(_ path: String) -> String { (path as NSString).lastPathComponent }
}
