import AgentProtocol
import Engine
import Foundation
import LinuxSystem

/// What the agent knows of one process that maps a targeted object.
struct ProcessRecord: Sendable {
    var identity: ProcessIdentity
    var executable: String
    var state: ProcessEntry.State
    var reason: String?
    var pauseUsec: UInt64?
    var hotpatch: String?
    /// When our jumps were last written into it (for the crash health window).
    var patchedAt: Date?
    /// Its user ids as last seen; once it was seen with any unprivileged uid, those stay (a user
    /// who could signal it once may have kept a way in).
    var credentials: ProcessCredentials?
    /// Where the hotpatch's code lies in it, from when it was patched.
    var patchedCode: PatchedCode?
    /// Each targeted object it maps and the fix that object runs, as last read from the process.
    var objects: [ObjectPatchReport] = []
    /// Its systemd unit, read once (`unitRead`): from the cgroup the scan read for a unit exclusion,
    /// else when first shown (a status reason, a journal notice, `agentctl processes`), so a pass
    /// reads no cgroup of a process nothing names.
    var unit: String?
    var unitRead = false
    /// Its command name, read once when it is first recorded (`described`).
    var command: String?
    var described = false
    /// The notice last logged that it still runs vulnerable code (release and reason), so each
    /// is logged once; nil while it runs no vulnerable code.
    var vulnerableNotice: String?

    /// Records the credentials seen now (nil: unreadable, keeps what was known).
    mutating func observe(_ seen: ProcessCredentials?) {
        guard let seen else { return }
        if let known = credentials, !known.isRootOnly { return }
        credentials = seen
    }

    /// The objects it maps that the level in force (`fixes`) fixes and that do not run that fix:
    /// the process still runs vulnerable code in them. Empty while it is patched, while it is being
    /// retried (pending: hotpatch-pending, not yet a refusal), and when no level is in force.
    func vulnerableObjects(at fixes: DesiredFixes) -> [ObjectPatchReport] {
        guard fixes.release != nil, state == .unpatchable || state == .unpatched else { return [] }
        return objects.filter { object in
            guard let fix = fixes.fix(for: object.buildID) else { return false }
            return object.release?.id != fix.release?.id
        }
    }

    /// The entry `agentctl processes` shows; `fixes` (the level in force) says which objects still
    /// run vulnerable code.
    func entry(at fixes: DesiredFixes = .none) -> ProcessEntry {
        let vulnerable = Set(vulnerableObjects(at: fixes).map(\.path))
        return ProcessEntry(pid: identity.pid.rawValue, executable: executable, state: state, reason: reason,
                            pauseUsec: pauseUsec, hotpatch: hotpatch, objects: objects.map { object in
                                ProcessEntry.MappedObject(path: object.path, buildId: object.buildID?.description,
                                                          hotpatch: object.release?.id, level: object.release?.level,
                                                          reason: object.refusal.map(\.description),
                                                          vulnerable: vulnerable.contains(object.path))
                            }, unit: unit, vulnerable: !vulnerable.isEmpty)
    }
}
