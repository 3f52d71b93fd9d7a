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

    /// Records the credentials seen now (nil: unreadable, keeps what was known).
    mutating func observe(_ seen: ProcessCredentials?) {
        guard let seen else { return }
        if let known = credentials, !known.isRootOnly { return }
        credentials = seen
    }

    /// The entry `agentctl processes` shows.
    var entry: ProcessEntry {
        ProcessEntry(pid: identity.pid.rawValue, executable: executable, state: state, reason: reason,
                     pauseUsec: pauseUsec, hotpatch: hotpatch, objects: objects.map { object in
                         ProcessEntry.MappedObject(path: object.path, buildId: object.buildID?.description,
                                                   hotpatch: object.release?.id, level: object.release?.level,
                                                   reason: object.refusal.map(\.description))
                     })
    }
}
