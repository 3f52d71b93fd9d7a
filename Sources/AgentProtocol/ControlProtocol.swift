import Foundation

/// A request on the control socket: one JSON object on one line (at most `ControlProtocol.maximumRequestBytes`).
public struct ControlRequest: Codable, Sendable, Equatable {
    /// What the client asks for.
    public enum Command: String, Codable, Sendable, CaseIterable {
        case status, processes, history, check, apply, revert, enroll, unenroll
        /// Whether the command changes anything (root only).
        public var isPrivileged: Bool {
            switch self {
            case .status, .processes, .history: return false
            case .check, .apply, .revert, .enroll, .unenroll: return true
            }
        }
    }
    public var command: Command
    /// The release id for apply and revert.
    public var id: String?
    public init(command: Command, id: String? = nil) {
        self.command = command
        self.id = id
    }
}

/// The answer: one JSON object on one line.
public struct ControlResponse: Codable, Sendable, Equatable {
    /// Whether the request was carried out.
    public var ok: Bool
    /// Why not, when `ok` is false.
    public var error: String?
    /// A person-readable line about what was done (apply, revert, enroll, …).
    public var message: String?
    public var status: AgentStatus?
    public var processes: [ProcessEntry]?
    public var history: [HistoryEntry]?
    public init(ok: Bool, error: String? = nil, message: String? = nil, status: AgentStatus? = nil,
                processes: [ProcessEntry]? = nil, history: [HistoryEntry]? = nil) {
        self.ok = ok
        self.error = error
        self.message = message
        self.status = status
        self.processes = processes
        self.history = history
    }
}

/// Constants of the control protocol.
public enum ControlProtocol {
    /// The socket's name inside the runtime directory.
    public static let socketName = "control.sock"
    /// The default runtime directory.
    public static let defaultRuntimeDirectory = "/run/hotpatch-agent"
    /// The default socket path.
    public static var defaultSocketPath: String { defaultRuntimeDirectory + "/" + socketName }
    /// Requests larger than this are refused.
    public static let maximumRequestBytes = 4096
    /// A client that sends nothing for this long is disconnected.
    public static let requestTimeoutSeconds = 5.0
}
