import Artifact
import Foundation
import LinuxSystem

/// Patches a new process that the exec gate holds at its start (`StartHold`), on the thread that
/// holds it: one per gate thread, since ptrace requests must come from the thread that seized.
public final class StartPatcher {
    private let patcher: Patcher
    private let finder: TargetFinder

    /// A patcher with `options`, sharing `cache` with the host's.
    public init(options: PatchOptions = PatchOptions(), cache: ObjectCache) {
        patcher = Patcher(options: options, cache: cache)
        finder = TargetFinder(cache: cache)
    }

    /// Brings the held process's targeted objects that are relocated by now (those whose RELRO
    /// the hold saw made read-only, or every object of the program's start once the dynamic linker
    /// made its own so; another targeted object it maps is left to a later call, after
    /// `StartHold.runToNextRelocated`, or to the usual path) to `desired`, unless `policy`
    /// excludes it. nil when it maps none of them.
    public func patch(_ hold: StartHold, desired: DesiredFixes, known: [Hotpatch], excluding policy: ExclusionPolicy) -> HostProcessReport? {
        let buildIDs = Set(known.flatMap { $0.targets.map(\.buildID) })
        guard var match = finder.process(buildIDs: buildIDs, pid: hold.pid) else { return nil }
        match.objects = match.objects.filter { hold.relocatedFiles.contains(StartFile($0.mappings[0])) }
        guard !match.objects.isEmpty else { return nil }
        let pid = match.process.pid
        let executable = (try? ProcFS.executablePath(of: pid)) ?? match.objects[0].path
        if let exclusion = policy.exclusion(of: pid, executable: executable, cgroup: { ProcFS.cgroup(of: pid) }) {
            let result: HostProcessReport.Result = exclusion == .initProcess
                ? .reconciled(.refused(match, .protectedProcess(why: exclusion.description))) : .excluded(exclusion)
            return HostProcessReport(match: match, executable: executable, result: result)
        }
        let mapped = Set(match.objects.compactMap(\.buildID))
        let knownFixes = ObjectFix.all(of: known).filter { mapped.contains($0.target.buildID) }
        let report = patcher.reconcile(match, desired: desired, known: knownFixes, holding: hold)
        return HostProcessReport(match: match, executable: executable, patched: report)
    }
}
