import Artifact
import LinuxSystem
/// A process that maps an object some hotpatch targets.
public struct TargetMatch: Sendable {
    /// The process, with its start time so a reused pid is never mistaken for it.
    public var process: ProcessIdentity
    /// The matched object as the process maps it.
    public var object: LoadedObject

    /// Describes one (process, object) pair.
    public init(process: ProcessIdentity, object: LoadedObject) {
        self.process = process
        self.object = object
    }
}

/// A process with every targeted object it maps: the unit the `Patcher` works on, so all of a
/// release's objects in one process change in one stop.
public struct ProcessMatch: Sendable {
    /// The process, with its start time so a reused pid is never mistaken for it.
    public var process: ProcessIdentity
    /// The targeted objects it maps, in address order (never empty).
    public var objects: [LoadedObject]

    /// Describes one process and its targeted objects.
    public init(process: ProcessIdentity, objects: [LoadedObject]) {
        self.process = process
        self.objects = objects
    }

    /// The process of `match`, with its one object.
    public init(_ match: TargetMatch) { self.init(process: match.process, objects: [match.object]) }
}

/// Finds running processes by the build-ids of the objects they map, reading each file's build-id
/// once (cached by device and inode) and reaching deleted or replaced files through map_files.
public struct TargetFinder: Sendable {
    /// Shared facts about mapped files.
    public let cache: ObjectCache

    /// A finder using `cache`.
    public init(cache: ObjectCache) { self.cache = cache }

    /// Every process (among `pids`, default all) that maps an object whose build-id is in
    /// `buildIDs`, with all such objects it maps. Processes that vanish while being scanned, and
    /// kernel threads, are skipped.
    public func processes(buildIDs: Set<BuildID>, among pids: [ProcessID]? = nil) -> [ProcessMatch] {
        guard !buildIDs.isEmpty else { return [] }
        let candidates = pids ?? ((try? ProcFS.processIDs()) ?? [])
        return candidates.compactMap { process(buildIDs: buildIDs, pid: $0) }
    }

    /// Process `pid` with every object it maps whose build-id is in `buildIDs`; nil when it maps
    /// none, is gone, or is a kernel thread.
    public func process(buildIDs: Set<BuildID>, pid: ProcessID) -> ProcessMatch? {
        processWithLayout(buildIDs: buildIDs, pid: pid)?.match
    }

    /// `process(buildIDs:pid:)`, with the layout it was found in (for a patch that follows at
    /// once, which then need not read it again).
    func processWithLayout(buildIDs: Set<BuildID>, pid: ProcessID) -> (match: ProcessMatch, layout: ProcessLayout)? {
        let found = objects(buildIDs: buildIDs, in: pid)
        guard let identity = found.identity, !found.objects.isEmpty else { return nil }
        return (ProcessMatch(process: identity, objects: found.objects), found.layout)
    }

    /// Every (process, object) pair whose object's build-id is in `buildIDs`; a process mapping
    /// two such objects gives two pairs (see `processes(buildIDs:among:)` for one entry a process).
    public func find(buildIDs: Set<BuildID>, among pids: [ProcessID]? = nil) -> [TargetMatch] {
        processes(buildIDs: buildIDs, among: pids).flatMap { match in
            match.objects.map { TargetMatch(process: match.process, object: $0) }
        }
    }

    /// The objects of one process whose build-id is in `buildIDs`.
    public func find(buildIDs: Set<BuildID>, in pid: ProcessID) -> [TargetMatch] {
        let found = objects(buildIDs: buildIDs, in: pid)
        guard let identity = found.identity else { return [] }
        return found.objects.map { TargetMatch(process: identity, object: $0) }
    }

    /// What a scan read of one process: its mappings, and every ELF object among them.
    struct ProcessLayout {
        let mappings: [MemoryMapping]
        let objects: [LoadedObject]
        /// The process's /proc directory, opened before its start time was read: what is read
        /// through it later is the same process's, whoever has its pid by then.
        var directory: ProcessDirectory? = nil
        /// The executable's path, when the caller read it right after (`/proc/PID/exe`).
        var executablePath: String? = nil
    }

    /// The process's identity, its layout and the objects in it whose build-id is in `buildIDs`; no
    /// identity (and an empty layout) when there are none.
    private func objects(buildIDs: Set<BuildID>, in pid: ProcessID)
        -> (identity: ProcessIdentity?, layout: ProcessLayout, objects: [LoadedObject]) {
        // The maps and the start time through one open directory of the process: both are then
        // the same process's whichever is read first, and so is everything a patch reads through
        // it later. The start time only of a process that matches: most of a host's do not.
        let none = (identity: ProcessIdentity?.none, layout: ProcessLayout(mappings: [], objects: []), objects: [LoadedObject]())
        guard let directory = try? ProcessDirectory(pid), let mappings = try? ProcFS.maps(of: directory), !mappings.isEmpty else { return none }
        let loaded = LoadedObjects.of(pid: pid, mappings: mappings, cache: cache)
        let matched = loaded.filter { $0.buildID.map(buildIDs.contains) ?? false }
        guard !matched.isEmpty, let identity = try? ProcFS.identity(of: directory) else { return none }
        return (identity, ProcessLayout(mappings: mappings, objects: loaded, directory: directory), matched)
    }
}
