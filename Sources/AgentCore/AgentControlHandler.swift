import AgentProtocol

/// What the control socket asks of the running agent. The agent implements it; the socket server
/// only parses, authorises (SO_PEERCRED) and forwards.
public protocol AgentControlHandler: Sendable {
    /// The current status.
    func status() async -> AgentStatus
    /// Every process that maps a targeted object.
    func processes() async -> [ProcessEntry]
    /// The most recent actions, oldest first.
    func history() async -> [HistoryEntry]
    /// Polls the channel now and returns the status once that cycle is done.
    func checkNow() async -> AgentStatus
    /// Lifts a hold or quarantine on release `id` and applies it; returns what was done.
    func apply(id: String) async throws -> String
    /// Reverts release `id` everywhere and holds it until `apply`; returns what was done.
    func revert(id: String) async throws -> String
    /// Enrolls the host (persisted).
    func enroll() async throws -> String
    /// Unenrolls the host (persisted): reverts our hotpatches, applies none.
    func unenroll() async throws -> String
}
