import Glibc
import LinuxSystem

/// Every error the agent's core reports: a closed set of cases, each carrying what a person needs
/// to act (the file, the line, the release, the errno). To add a case, add it here together with
/// its sentence in `description`; keep the sentence in the form "what failed: why".
public enum AgentCoreError: Error, Equatable, Sendable, CustomStringConvertible, SystemErrorCarrying {
    /// The configuration (a file, or a flag when `path` is the flag's name) is refused.
    case configuration(path: String, line: Int?, reason: String)
    /// The state file exists but cannot be trusted (torn, truncated, altered or unreadable JSON).
    case corruptState(path: String, reason: String)
    /// The state file was written by a newer agent whose format this one does not know.
    case unsupportedStateFormat(path: String, formatVersion: Int)
    /// A system call failed: the system layer's error, wrapped.
    case system(SystemError)
    /// A command the agent runs (dpkg, systemctl) could not start or exited with a failure.
    case commandFailed(command: String, status: Int32, output: String)
    /// Installing a baseline or fix failed; `rollback` says what was undone and what was not.
    case installFailed(releaseID: String, reason: String, rollback: String)
    /// An administrator named a hotpatch the verified channel does not hold.
    case unknownRelease(id: String)
    /// A root write to `path` was refused because `component`, on the way to it, could be changed
    /// by a user other than root (see `InstallPathRules`).
    case untrustedPath(path: String, component: String, reason: String)

    /// A sentence a person can act on.
    public var description: String {
        switch self {
        case let .configuration(path, line, reason):
            if let line { return "\(path):\(line): \(reason)" }
            return "\(path): \(reason)"
        case let .corruptState(path, reason):
            return "State file \(path) is corrupt (\(reason)); it was left untouched for inspection: "
                + "move it aside to start from a fresh state, which forgets quarantines, holds and history"
        case let .unsupportedStateFormat(path, version):
            return "State file \(path) has format version \(version), newer than this agent understands "
                + "(\(AgentState.currentFormatVersion)); run the newer agent, or move the file aside"
        case let .system(error):
            return error.description
        case let .commandFailed(command, status, output):
            let detail = output.trimmingTrailingNewlines
            let head = status == -1 ? "Failed to run \(command)" : "\(command) failed with exit status \(status)"
            return detail.isEmpty ? head : "\(head): \(detail)"
        case let .installFailed(releaseID, reason, rollback):
            return "Failed to install release \(releaseID): \(reason); \(rollback)"
        case let .unknownRelease(id):
            return "No hotpatch \(id) in the verified channel (agentctl status lists what the channel holds)"
        case let .untrustedPath(path, component, reason):
            return "Refusing to write \(path): \(component) \(reason)"
        }
    }
}

extension AgentCoreError {
    /// Wraps a failed system call of the system layer.
    init(_ error: SystemError) { self = .system(error) }

    /// A failed system call `name` on `subject` (a path, a pid), for checks the agent makes itself.
    static func systemCall(name: String, errno: Int32, subject: String) -> AgentCoreError {
        .system(SystemError(call: name, errno: errno, subject: subject))
    }

    /// The failed system call, if this is one.
    public var systemError: SystemError? {
        guard case let .system(error) = self else { return nil }
        return error
    }
}

extension String {
    /// The text without the newlines a command's output ends with.
    var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == "\r" { text = text.dropLast() }
        return String(text)
    }
}
