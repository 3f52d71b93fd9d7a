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
