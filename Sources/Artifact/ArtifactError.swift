import LinuxSystem

/// Every failure of reading or checking a hotpatch artifact (ELF objects, the hotpatch model, the
/// channel): one closed set of cases, each carrying what a person needs to act.
public enum ArtifactError: Error, Equatable, Sendable, CustomStringConvertible, SystemErrorCarrying {
    /// A system call failed while reading or storing an artifact.
    case system(SystemError)
    /// An ELF file is truncated, inconsistent, or not an ELF64 object of the host architecture.
    case malformedELF(path: String, reason: String)
    /// A patch object uses something the Engine's loader cannot honour (TLS, text relocations, …).
    case unsupportedPatchObject(path: String, reason: String)
    /// A target or patch object does not fit the hotpatch that describes it.
    case invalidHotpatch(id: String, reason: String)
    /// The update channel, or one of its files, was refused.
    case channel(ChannelRefusal)

    /// A message a person can act on: what failed, where, and why.
    public var description: String {
        switch self {
        case let .system(error): return error.description
        case let .malformedELF(path, reason): return "Malformed ELF file \(path): \(reason)"
        case let .unsupportedPatchObject(path, reason): return "Unsupported patch object \(path): \(reason)"
        case let .invalidHotpatch(id, reason): return "Invalid hotpatch \(id): \(reason)"
        case let .channel(refusal): return refusal.description
        }
    }

    /// The failed system call, if this is one.
    public var systemError: SystemError? {
        if case let .system(error) = self { return error }
        return nil
    }
}
