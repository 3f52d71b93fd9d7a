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

    /// Records the credentials seen now (nil: unreadable, keeps what was known).
    mutating func observe(_ seen: ProcessCredentials?) {
        guard let seen else { return }
        if let known = credentials, !known.isRootOnly { return }
        credentials = seen
    }

    /// The entry `agentctl processes` shows.
    var entry: ProcessEntry {
        ProcessEntry(pid: identity.pid.rawValue, executable: executable, state: state, reason: reason,
                     pauseUsec: pauseUsec, hotpatch: hotpatch)
    }
}

/// Keeps processes named by configuration out of patching: executable globs and systemd units.
struct Exclusions: Sendable {
    let executableGlobs: [String]
    let units: [String]

    /// Why `pid` is excluded, or nil.
    func reason(pid: ProcessID, executable: String) -> String? {
        for glob in executableGlobs where fnmatch(glob, executable, 0) == 0 {
            return "excluded by configuration (executable matches \(glob))"
        }
        guard !units.isEmpty, let cgroup = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else {
            return nil
        }
        // Unit names appear as path components of the process's cgroup (v1 or v2).
        let components = Set(cgroup.split(whereSeparator: { $0 == "/" || $0 == "\n" || $0 == ":" }).map(String.init))
        for unit in units where components.contains(unit) {
            return "excluded by configuration (unit \(unit))"
        }
        return nil
    }
}
