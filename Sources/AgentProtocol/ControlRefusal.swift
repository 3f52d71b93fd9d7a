/// How the agent words a refusal for lack of privilege, so clients can tell it from other refusals.
extension ControlResponse {
    /// Every permission refusal's `error` starts with this.
    public static let permissionDeniedPrefix = "permission denied: "

    /// The refusal of a privileged `command` to a peer that is not root (`peerUID` nil when unknown).
    public static func permissionDenied(command: ControlRequest.Command, peerUID: UInt32?) -> ControlResponse {
        let peer = peerUID.map { "peer uid \($0)" } ?? "peer unknown"
        return ControlResponse(ok: false, error: "\(permissionDeniedPrefix)\(command.rawValue) requires root (\(peer))")
    }

    /// Whether this answer refuses the request for lack of privilege.
    public var isPermissionDenied: Bool {
        !ok && (error?.hasPrefix(Self.permissionDeniedPrefix) ?? false)
    }
}

/// How the agent words a refusal because too many connections are open, so agentctl can give it an
/// exit status of its own (75, EX_TEMPFAIL: try again later).
extension ControlResponse {
    /// Every busy refusal's `error` starts with this.
    public static let busyPrefix = "agent busy: "

    /// The refusal of a connection beyond the agent's limits; `reason` says which limit.
    public static func busy(_ reason: String) -> ControlResponse {
        ControlResponse(ok: false, error: busyPrefix + reason)
    }

    /// Whether this answer refuses the request because the agent is busy.
    public var isBusy: Bool {
        !ok && (error?.hasPrefix(Self.busyPrefix) ?? false)
    }
}
