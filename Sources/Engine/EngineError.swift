import LinuxSystem

/// Every failure the runtime Engine reports: one closed set of cases, each carrying what a person needs to act.
public enum EngineError: Error, Equatable, Sendable, CustomStringConvertible, SystemErrorCarrying {
    /// A system call failed (ptrace, /proc, process memory).
    case system(SystemError)
    /// A file under /proc did not have the expected shape.
    case malformedProcFile(path: String, reason: String)

    /// A failed system call `name` on `subject` (a path, a pid, an address).
    public static func systemCall(name: String, errno: Int32, subject: String) -> EngineError {
        .system(SystemError(call: name, errno: errno, subject: subject))
    }

    /// A message a person can act on: what failed, where, and why.
    public var description: String {
        switch self {
        case let .system(error): return error.description
        case let .malformedProcFile(path, reason): return "Unexpected content in \(path): \(reason)"
        }
    }

    /// The failed system call, if this is one.
    public var systemError: SystemError? {
        if case let .system(error) = self { return error }
        return nil
    }

    /// The errno number of a failed system call, if this is one.
    public var errno: Int32? { systemError?.errno }
}
