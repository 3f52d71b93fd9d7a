/// A fixture could not be built, started or read: the one failure type of the fixtures and the
/// tests' set-up (a test's own findings are expectations, not errors).
public enum FixtureError: Error, CustomStringConvertible, Equatable {
    /// A compiler or tool failed; the text names the command and what it printed.
    case toolFailed(String)
    /// A fixture did not print or reach what was expected in time.
    case timeout(String)
    /// Something a test needs before it starts (a folder, a socket, a fixture's output) is not there.
    case setUp(String)

    /// What went wrong.
    public var description: String {
        switch self {
        case let .toolFailed(text): return "fixture tool failed: \(text)"
        case let .timeout(text): return "fixture timed out: \(text)"
        case let .setUp(text): return "test set-up failed: \(text)"
        }
    }
}
