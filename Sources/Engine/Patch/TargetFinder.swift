import Artifact
import LinuxSystem
/// A process that maps an object some hotpatch targets.
public struct TargetMatch: Sendable {
    /// The process, with its start time so a reused pid is never mistaken for it.
    public var process: ProcessIdentity
    /// The matched object as the process maps it.
    public var object: LoadedObject
}

/// Finds running processes by the build-ids of the objects they map, reading each file's build-id
/// once (cached by device and inode) and reaching deleted or replaced files through map_files.
public struct TargetFinder: Sendable {
    /// Shared facts about mapped files.
    public let cache: ObjectCache

    /// A finder using `cache`.
    public init(cache: ObjectCache) { self.cache = cache }

    /// Every (process, object) pair whose object's build-id is in `buildIDs`. Processes that vanish
    /// while being scanned, and kernel threads, are skipped.
    public func find(buildIDs: Set<BuildID>, among pids: [ProcessID]? = nil) -> [TargetMatch] {
        guard !buildIDs.isEmpty else { return [] }
        let candidates = pids ?? ((try? ProcFS.processIDs()) ?? [])
        var matches: [TargetMatch] = []
        for pid in candidates {
            matches.append(contentsOf: find(buildIDs: buildIDs, in: pid))
        }
        return matches
    }

    /// The objects of one process whose build-id is in `buildIDs`.
    public func find(buildIDs: Set<BuildID>, in pid: ProcessID) -> [TargetMatch] {
        guard let identity = try? ProcFS.identity(of: pid),
              let mappings = try? ProcFS.maps(of: pid), !mappings.isEmpty else { return [] }
        return LoadedObjects.of(pid: pid, mappings: mappings, cache: cache)
            .filter { $0.buildID.map(buildIDs.contains) ?? false }
            .map { TargetMatch(process: identity, object: $0) }
    }
}
