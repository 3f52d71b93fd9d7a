import AgentProtocol
import Foundation

/// Why a request line could not be understood; each message names the problem so a person can fix
/// the request.
public enum ControlRequestProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// The line held nothing but white space.
    case empty
    /// The line was longer than `ControlProtocol.maximumRequestBytes`.
    case tooLarge
    /// The line is not a JSON object.
    case notAJSONObject
    /// The object has no `command` string.
    case missingCommand
    /// The command is not one the agent knows.
    case unknownCommand(String)
    /// `apply` or `revert` without a non-empty `id` string.
    case missingID(ControlRequest.Command)

    /// The error text sent back to the client.
    public var description: String {
        switch self {
        case .empty:
            return "empty request: send one JSON object on one line, e.g. {\"command\":\"status\"}"
        case .tooLarge:
            return "request larger than \(ControlProtocol.maximumRequestBytes) bytes"
        case .notAJSONObject:
            return "malformed request: not a JSON object on one line, e.g. {\"command\":\"status\"}"
        case .missingCommand:
            return "malformed request: missing \"command\" (a string)"
        case .unknownCommand(let name):
            let known = ControlRequest.Command.allCases.map(\.rawValue).joined(separator: ", ")
            return "unknown command \"\(name)\" (known: \(known))"
        case .missingID(let command):
            return "\(command.rawValue) requires \"id\": the release id, e.g. {\"command\":\"\(command.rawValue)\",\"id\":\"RELEASE\"}"
        }
    }
}

/// Turns one request line into a `ControlRequest`, or the problem with it. Unknown keys are ignored so
/// newer clients can talk to older agents.
public enum ControlRequestParser {
    /// Parses `line` (without its newline).
    public static func parse(_ line: some Collection<UInt8>) -> Result<ControlRequest, ControlRequestProblem> {
        guard line.count <= ControlProtocol.maximumRequestBytes else { return .failure(.tooLarge) }
        let data = Data(line)
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }) { return .failure(.empty) }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            return .failure(.notAJSONObject)
        }
        guard let name = object["command"] as? String else { return .failure(.missingCommand) }
        guard let command = ControlRequest.Command(rawValue: name) else { return .failure(.unknownCommand(name)) }
        let id = object["id"] as? String
        if command == .apply || command == .revert {
            guard let id, !id.isEmpty else { return .failure(.missingID(command)) }
        }
        return .success(ControlRequest(command: command, id: id))
    }
}
