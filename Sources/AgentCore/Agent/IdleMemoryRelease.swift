import Engine
import Synchronization

/// Gives memory back once the agent has been quiet a while: the heap's free pages, and the pages of
/// its code and libraries that its start, its last pass or its last answer mapped (`Heap`). Done
/// after a quiet spell, not after each piece of work, so a burst (a landing, `agentctl` polled in
/// a loop) never maps the same code again and again; an idle agent's resident set is then what it
/// uses, not what it touched once.
final class IdleMemoryRelease: Sendable {
    /// The agent's: its passes and its control server note their work here.
    static let shared = IdleMemoryRelease(quiet: .seconds(2))

    private let quiet: Duration
    private let pending = Mutex<Task<Void, Never>?>(nil)

    init(quiet: Duration) { self.quiet = quiet }

    /// Work just ended: the release comes `quiet` after the last such call.
    func noteActivity() {
        let quiet = quiet
        pending.withLock { task in
            task?.cancel()
            task = Task.detached(priority: .background) {
                try? await Task.sleep(for: quiet)
                guard !Task.isCancelled else { return }
                Heap.giveBackFreeMemory()
                _ = try? Heap.unmapIdleFilePages()
            }
        }
    }
}
