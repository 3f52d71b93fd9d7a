/// Why the update channel, or a file in it, was refused.
public enum ChannelRefusal: Equatable, Sendable, CustomStringConvertible {
    /// The index could not be read or parsed.
    case malformedIndex(path: String, reason: String)

    /// A message naming the file and the reason.
    public var description: String {
        switch self {
        case let .malformedIndex(path, reason): return "Refused channel index \(path): \(reason)"
        }
    }
}
