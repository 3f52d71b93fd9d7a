import Artifact
import Foundation
import LinuxSystem

/// The generator's half of `hotpatch-pack build` and `build-deb`: each prepared target's patch
/// generated, and when nothing is refused, the release added to the channel as `hotpatch-pack
/// hotpatch` adds one.
enum GeneratedRelease {
    /// The report, and the refusal when nothing was written (the caller prints the report first).
    struct Outcome {
        var report: BuildReport
        var refusal: PackError?
    }

    /// Generates every target of `prepared` and adds the release; `pathHints` (one per target, or
    /// empty) are the objects' paths on hosts when they are known. `progress` gets stderr lines.
    static func generate(_ prepared: PreparedBuilds, pathHints: [String?] = [], release: HotpatchLevelOptions, addition: HotpatchAddition,
                         workspace: ChannelWorkspace, channel: String, progress: (String) -> Void) throws -> Outcome {
        var report = BuildReport(targets: [], refusals: [], release: nil, workDirectory: prepared.work.isKept ? prepared.work.root : nil)
        var generated: [(target: PreparedTarget, patch: GeneratedPatch)] = []
        for target in prepared.targets {
            if target.isReproducible {
                progress("\(target.builds.releasedPath): reproducible build: the rebuild is byte-identical to the released object")
            } else {
                progress("\(target.builds.releasedPath): the rebuild is not byte-identical to the released object: functions will be matched to the released object")
            }
            // Refusals come back as changes, so the report (text or JSON) lists each one.
            let patch = try generatePatchOrRefusals(for: target.builds)
            generated.append((target, patch))
            report.targets.append(BuildReport.Target(
                released: target.builds.releasedPath, buildId: target.buildID.description,
                original: target.builds.originalObjectPath, patched: target.builds.patchedObjectPath,
                reproducible: target.isReproducible, changes: patch.changes,
                replacements: patch.replacements.map { BuildReport.Replacement(symbol: $0.symbol, replacement: $0.replacement) },
                references: patch.references, patchObject: nil, notes: patch.notes))
        }
        report.refusals = generated.flatMap { $0.patch.changes.filter { $0.kind == .refused } }
        guard report.refusals.isEmpty else {
            return Outcome(report: report, refusal: PackError("Refused: \(report.refusals.map { "\($0.object): \($0.symbol): \($0.reason)" }.joined(separator: "; ")); nothing was written to \(channel)"))
        }
        let changed = generated.enumerated().filter { !$0.element.patch.replacements.isEmpty }
        guard !changed.isEmpty else {
            let names = prepared.targets.map(\.builds.releasedPath).joined(separator: ", ")
            return Outcome(report: report, refusal: PackError("Refused: nothing to patch: the diffs change no function of \(names); nothing was written to \(channel)"))
        }

        // Each patch object gets a file name of its own in the channel: hotpatch-<released name>
        // (with .so added to an executable's name).
        var groups: [TargetGroup] = []
        for (offset, item) in changed {
            let released = Files.baseName(item.target.builds.releasedPath)
            let name = "hotpatch-" + released + (released.contains(".so") ? "" : ".so")
            let copy = prepared.work.root + "/publish/\(offset + 1)/" + name
            do throws(SystemError) {
                try Files.makeDirectories(Files.directoryName(copy), mode: 0o755)
                try Files.writeAtomically(copy, bytes: try Files.read(item.patch.patchObjectPath, limit: ELFFile.maximumFileSize), mode: 0o644)
            } catch {
                throw PackError(error)
            }
            groups.append(TargetGroup(number: groups.count + 1, target: item.target.builds.releasedPath,
                                      debugFile: item.target.builds.debugFilePath, patch: copy,
                                      replacements: item.patch.replacements, references: item.patch.references.map(\.symbol),
                                      pathHint: offset < pathHints.count ? pathHints[offset] : nil, resolvedReferences: item.patch.references))
            report.targets[offset].patchObject = "hotpatches/\(release.id)/\(name)"
        }
        // The planner's note that inlined copies cannot be seen does not hold here: the generator
        // read the inlining from DWARF and replaced the callers.
        _ = try addition.add(groups, to: workspace) { warning in
            if !warning.contains("cannot be seen without DWARF") { Standard.error("warning: " + warning) }
        }
        report.release = BuildReport.Release(channel: channel, id: release.id, baseline: release.baseline, level: release.level)
        return Outcome(report: report, refusal: nil)
    }
}
