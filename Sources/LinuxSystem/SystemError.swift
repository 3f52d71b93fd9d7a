import Glibc

/// A failed system call: the one error of the system layer, worded one way everywhere
/// ("NAME failed for SUBJECT: ENOENT (No such file or directory)"). Other modules wrap it in their own.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The call that failed, e.g. "open" or "ptrace(PTRACE_SEIZE)".
    public let call: String
    /// The errno value it failed with.
    public let errno: Int32
    /// What it acted on: a path, a pid, an address.
    public let subject: String

    /// A failure of `call` on `subject` with `errno`.
    public init(call: String, errno: Int32, subject: String) {
        (self.call, self.errno, self.subject) = (call, errno, subject)
    }

    /// The one sentence form: what failed, where, and why.
    public var description: String { "\(call) failed for \(subject): \(Self.errnoText(errno))" }

    /// The conventional name and text of an errno value, e.g. "ESRCH (No such process)".
    public static func errnoText(_ number: Int32) -> String {
        "\(errnoName(number)) (\(String(cString: strerror(number))))"
    }

    /// The symbolic name of an errno value ("ENOENT"), or "errno N" for an uncommon one.
    public static func errnoName(_ number: Int32) -> String {
        switch number {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case ESRCH: return "ESRCH"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case E2BIG: return "E2BIG"
        case EBADF: return "EBADF"
        case ECHILD: return "ECHILD"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case EXDEV: return "EXDEV"
        case ENODEV: return "ENODEV"
        case ENOTDIR: return "ENOTDIR"
        case EISDIR: return "EISDIR"
        case EINVAL: return "EINVAL"
        case EMFILE: return "EMFILE"
        case ENFILE: return "ENFILE"
        case EFBIG: return "EFBIG"
        case ENOSPC: return "ENOSPC"
        case EROFS: return "EROFS"
        case EPIPE: return "EPIPE"
        case ENOSYS: return "ENOSYS"
        case ENOTEMPTY: return "ENOTEMPTY"
        case ELOOP: return "ELOOP"
        case ENAMETOOLONG: return "ENAMETOOLONG"
        case ENXIO: return "ENXIO"
        case ETXTBSY: return "ETXTBSY"
        case ESPIPE: return "ESPIPE"
        case ENOTSOCK: return "ENOTSOCK"
        case EPROTONOSUPPORT: return "EPROTONOSUPPORT"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        case EAFNOSUPPORT: return "EAFNOSUPPORT"
        case EADDRNOTAVAIL: return "EADDRNOTAVAIL"
        case ECONNABORTED: return "ECONNABORTED"
        case ENOBUFS: return "ENOBUFS"
        case ENOTCONN: return "ENOTCONN"
        case EADDRINUSE: return "EADDRINUSE"
        case ECONNREFUSED: return "ECONNREFUSED"
        case ECONNRESET: return "ECONNRESET"
        case ETIMEDOUT: return "ETIMEDOUT"
        default: return "errno \(number)"
        }
    }
}

/// An error of another module that may carry a failed system call (to ask "is the process gone?"
/// of any error without knowing which module threw it).
public protocol SystemErrorCarrying: Error {
    /// The failed system call inside this error, if it is one.
    var systemError: SystemError? { get }
}

extension SystemError: SystemErrorCarrying {
    /// Itself.
    public var systemError: SystemError? { self }
}

extension Error {
    /// The failed system call this error is or wraps, if any.
    public var underlyingSystemError: SystemError? { (self as? any SystemErrorCarrying)?.systemError }

    /// True when this is or wraps a system call that failed because the process or thread no longer
    /// exists (ESRCH, or ENOENT from /proc).
    public var isProcessGone: Bool {
        guard let number = underlyingSystemError?.errno else { return false }
        return number == ENOENT || number == ESRCH
    }
}
