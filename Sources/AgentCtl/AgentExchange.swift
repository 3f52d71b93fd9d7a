import AgentProtocol
import ArgumentParser
import Foundation

/// agentctl's exit statuses beyond 0: the shared table (`ExitStatus`, docs/STATUS.md).
enum AgentctlExit {
    /// The agent answered but refused the request for another reason than permission.
    static let refused = ExitCode(ExitStatus.refused.code)
    /// The agent cannot be reached (EX_UNAVAILABLE).
    static let unavailable = ExitCode(ExitStatus.unavailable.code)
    /// The agent's answer cannot be read (EX_PROTOCOL).
    static let protocolError = ExitCode(ExitStatus.protocolError.code)
    /// The agent is busy: too many control connections open, or its connection queue full; try
    /// again later (EX_TEMPFAIL).
    static let busy = ExitCode(ExitStatus.busy.code)
    /// Refused for lack of permission (EX_NOPERM).
    static let noPermission = ExitCode(ExitStatus.noPermission.code)
}

/// One request to the agent, with its failures turned into a message on stderr and an exit status.
enum AgentExchange {
    /// Sends `request` through `global.socket`; returns the answer only when the agent carried it out.
    static func send(_ request: ControlRequest, global: GlobalOptions) throws -> ControlResponse {
        let client = ControlClient(socketPath: global.socket,
                                   timeoutSeconds: ControlClient.suggestedTimeoutSeconds(for: request.command))
        let response: ControlResponse
        do {
            response = try client.send(request)
        } catch {
            printError(error.description)
            switch error {
            case .permissionDenied: throw AgentctlExit.noPermission
            case .malformedAnswer: throw AgentctlExit.protocolError
            case .queueFull: throw AgentctlExit.busy
            default: throw AgentctlExit.unavailable
            }
        }
        guard response.ok else {
            printError(response.error ?? "the agent refused the request without saying why")
            if response.isPermissionDenied { throw AgentctlExit.noPermission }
            throw response.isBusy ? AgentctlExit.busy : AgentctlExit.refused
        }
        return response
    }

    /// Sends a command that reads something, takes that `part` of the answer (named `name` when it
    /// is missing) and prints it: as a JSON document alone on stdout with `json`, else as text.
    @discardableResult
    static func show<Part>(_ command: ControlRequest.Command, global: GlobalOptions, json: Bool, name: String,
                           part: (ControlResponse) -> Part?, document: (Part) throws -> Data,
                           text: (Part) -> String) throws -> Part {
        let response = try send(ControlRequest(command: command), global: global)
        guard let answer = part(response) else { throw missing(name) }
        if json {
            printJSON(try document(answer))
        } else {
            print(text(answer))
        }
        return answer
    }

    /// Sends a command that only changes something and prints the agent's one-line account of it.
    static func perform(_ request: ControlRequest, global: GlobalOptions) throws {
        let response = try send(request, global: global)
        print(response.message ?? "done")
    }

    /// Writes a JSON document to stdout, alone.
    static func printJSON(_ data: Data) {
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    /// Writes "agentctl: message" to stderr.
    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("agentctl: \(message)\n".utf8))
    }

    /// The answer lacked the part the command asked for.
    static func missing(_ part: String) -> ExitCode {
        printError("the agent's answer has no \(part); are agentctl and the agent the same version?")
        return AgentctlExit.protocolError
    }
}
