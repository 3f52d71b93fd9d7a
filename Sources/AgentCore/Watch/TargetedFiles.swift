import Artifact
import Engine
import LinuxSystem

/// Which files the mapping watch marks: for every object the verified channel targets, the file
/// at the target's path hint when that file holds the object (same build-id), and every file a
/// process the agent lists maps the object from (through `/proc/PID/map_files`, so a copy in a
/// chroot or another mount namespace is the very file that process's neighbours would open).
///
/// A file found once stays wanted until the targets change, even after the process that led to
/// it ended: the next process in that chroot will open the same file.
struct TargetedFiles {
    /// The build-ids targeted now.
    private(set) var buildIDs: Set<BuildID> = []
    private var pathHints: [String] = []
    /// Processes already looked at for these targets.
    private var examined: Set<ProcessID> = []
    /// What each file at a path hint was found to hold, by identity (a replaced file is read again).
    private var hintContents: [FileIdentity: BuildID?] = [:]
    private let finder: TargetFinder

    /// Finds files through `cache` (the agent's, so each file's facts are read once).
    init(cache: ObjectCache = ObjectCache()) { finder = TargetFinder(cache: cache) }

    /// Replaces the targets with `targets`; true when the targeted build-ids changed, and the
    /// caller must drop every mark (`files` then names every file again).
    mutating func retarget(_ targets: [HotpatchTarget]) -> Bool {
        let ids = Set(targets.map(\.buildID))
        pathHints = Array(Set(targets.map(\.pathHint))).sorted()
        guard ids != buildIDs else { return false }
        buildIDs = ids
        examined.removeAll()
        return true
    }

    /// The files to mark now: each path hint that holds a targeted object, and the files of the
    /// targeted objects that processes among `listed` map, each process looked at once (deleted
    /// files are left out: no loader can open them any more). Processes no longer listed are forgotten.
    mutating func files(listed: [ProcessID]) -> [String] {
        guard !buildIDs.isEmpty else { return [] }
        var files: [String] = []
        for path in pathHints where holdsTarget(path) { files.append(path) }
        examined.formIntersection(listed)
        for pid in listed where examined.insert(pid).inserted {
            for match in finder.find(buildIDs: buildIDs, in: pid) where !match.object.isDeleted {
                files.append(match.object.readablePath)
            }
        }
        return files
    }

    /// Whether the file at `path` holds an object with a targeted build-id (read once per file).
    private mutating func holdsTarget(_ path: String) -> Bool {
        guard path.hasPrefix("/"), let identity = try? FileIdentity(path: path) else { return false }
        if let known = hintContents[identity] { return known.map(buildIDs.contains) ?? false }
        let buildID = (try? ELFFile.readIdentity(path: path))?.buildID
        hintContents[identity] = buildID
        return buildID.map(buildIDs.contains) ?? false
    }
}
