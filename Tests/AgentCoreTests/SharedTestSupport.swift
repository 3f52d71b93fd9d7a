/// Every file of this test target sees the shared test support (temporary directories, programs,
/// fixture builds, `FixtureError`) as it would helpers of its own, without an import each.
@_exported import TestSupport

import AgentCore
import Synchronization

/// A count that tasks and callbacks running concurrently add to.
final class SharedCount: Sendable {
    private let count = Mutex(0)

    /// Adds one.
    func increment() { count.withLock { $0 += 1 } }

    /// The count now.
    var value: Int { count.withLock { $0 } }
}

extension AgentConfiguration {
    /// The embedded defaults, with the state, runtime and channel directories under `directory`.
    static func defaults(under directory: String) -> AgentConfiguration {
        var configuration = AgentConfiguration()
        configuration.stateDirectory = directory + "/state"
        configuration.runtimeDirectory = directory + "/run"
        configuration.channelDirectory = directory + "/channel"
        return configuration
    }
}
