import AgentProtocol
import Foundation
import LinuxSystem
import Logging

/// Parses, authorises and forwards one request to the agent: the socket-free heart of the control
/// server, so it can be tested without sockets.
public struct ControlDispatcher: Sendable {
    /// The agent behind the socket.
    public let handler: any AgentControlHandler
    /// Where refusals and privileged actions are logged.
    public let logger: Logger
    /// Summarises refused privileged requests, which any local user can send at will; nil logs each.
    private let privilegedRefusals: ControlRefusalLog?

    /// A dispatcher forwarding to `handler`, logging every refusal.
    public init(handler: any AgentControlHandler, logger: Logger) {
        self.init(handler: handler, logger: logger, privilegedRefusals: nil)
    }

    /// A dispatcher whose refused privileged requests go to `privilegedRefusals` (the server's).
    init(handler: any AgentControlHandler, logger: Logger, privilegedRefusals: ControlRefusalLog?) {
        self.handler = handler
        self.logger = logger
        self.privilegedRefusals = privilegedRefusals
    }

    /// The answer to one request line from `peer` (nil when the kernel could not tell who it is: such a
    /// peer is treated as unprivileged).
    public func respond(toLine line: some Collection<UInt8>, peer: PeerCredentials?) async -> ControlResponse {
        switch ControlRequestParser.parse(line) {
        case .failure(let problem):
            logger.debug("Refused malformed control request", metadata: peerMetadata(peer).merging(
                ["control.error": "\(problem)"], uniquingKeysWith: { $1 }))
            return ControlResponse(ok: false, error: problem.description)
        case .success(let request):
            return await respond(to: request, peer: peer)
        }
    }

    /// The answer to a parsed request from `peer`.
    public func respond(to request: ControlRequest, peer: PeerCredentials?) async -> ControlResponse {
        var metadata = peerMetadata(peer)
        metadata["control.command"] = "\(request.command.rawValue)"
        if let id = request.id { metadata["control.id"] = "\(id)" }

        if request.command.isPrivileged {
            guard let peer, peer.isRoot else {
                if let privilegedRefusals {
                    privilegedRefusals.record(uid: peer?.uid, details: metadata)
                } else {
                    logger.warning("Refused privileged control request from unprivileged peer", metadata: metadata)
                }
                return ControlResponse.permissionDenied(command: request.command, peerUID: peer?.uid)
            }
            logger.notice("Carrying out privileged control request", metadata: metadata)
        }

        do {
            switch request.command {
            case .status:
                return ControlResponse(ok: true, status: await handler.status())
            case .processes:
                return ControlResponse(ok: true, processes: await handler.processes())
            case .history:
                return ControlResponse(ok: true, history: await handler.history())
            case .check:
                return ControlResponse(ok: true, message: "channel checked", status: await handler.checkNow())
            case .apply:
                return ControlResponse(ok: true, message: try await handler.apply(id: request.id ?? ""))
            case .revert:
                return ControlResponse(ok: true, message: try await handler.revert(id: request.id ?? ""))
            case .enroll:
                return ControlResponse(ok: true, message: try await handler.enroll())
            case .unenroll:
                return ControlResponse(ok: true, message: try await handler.unenroll())
            }
        } catch {
            metadata["control.error"] = "\(error)"
            logger.warning("Control request failed", metadata: metadata)
            return ControlResponse(ok: false, error: String(describing: error))
        }
    }

    private func peerMetadata(_ peer: PeerCredentials?) -> Logger.Metadata {
        guard let peer else { return ["control.peer.uid": "unknown"] }
        return ["control.peer.pid": "\(peer.pid)", "control.peer.uid": "\(peer.uid)", "control.peer.gid": "\(peer.gid)"]
    }
}
