import Glibc

/// Every failure the Engine reports: one closed set of cases, each carrying what a person needs to act.
public enum EngineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed; `subject` names what it acted on (a path, a pid, an address).
    case systemCall(name: String, errno: Int32, subject: String)
    /// An ELF file is truncated, inconsistent or not x86_64 ELF64.
    case malformedELF(path: String, reason: String)
    /// A patch object uses something the Engine's loader cannot honour (TLS, text relocations, …).
    case unsupportedPatchObject(path: String, reason: String)
    /// A target or patch object does not fit the hotpatch that describes it.
    case invalidHotpatch(id: String, reason: String)
    /// A file under /proc did not have the expected shape.
    case malformedProcFile(path: String, reason: String)
    /// The update channel, or one of its files, was refused.
    case channel(ChannelRefusal)

    /// A message a person can act on: what failed, where, and why.
    public var description: String {
        switch self {
        case let .systemCall(name, errno, subject):
            return "\(name) failed for \(subject): \(EngineError.errnoText(errno))"
        case let .malformedELF(path, reason):
            return "Malformed ELF file \(path): \(reason)"
        case let .unsupportedPatchObject(path, reason):
            return "Unsupported patch object \(path): \(reason)"
        case let .invalidHotpatch(id, reason):
            return "Invalid hotpatch \(id): \(reason)"
        case let .malformedProcFile(path, reason):
            return "Unexpected content in \(path): \(reason)"
        case let .channel(refusal):
            return refusal.description
        }
    }

    /// The errno number of a failed system call, if this is one.
    public var errno: Int32? {
        if case let .systemCall(_, number, _) = self { return number }
        return nil
    }

    /// The conventional name and text of an errno value, e.g. "ESRCH (No such process)".
    public static func errnoText(_ number: Int32) -> String {
        let text = String(cString: strerror(number))
        return "\(errnoName(number)) (\(text))"
    }

    private static func errnoName(_ number: Int32) -> String {
        switch number {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case ESRCH: return "ESRCH"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case EBADF: return "EBADF"
        case ECHILD: return "ECHILD"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case ENOTDIR: return "ENOTDIR"
        case EISDIR: return "EISDIR"
        case EINVAL: return "EINVAL"
        case ENOSPC: return "ENOSPC"
        case EROFS: return "EROFS"
        case ENOSYS: return "ENOSYS"
        case ELOOP: return "ELOOP"
        case ENAMETOOLONG: return "ENAMETOOLONG"
        case ETIMEDOUT: return "ETIMEDOUT"
        default: return "errno \(number)"
        }
    }
}
