// libFuzzer entry point for the control protocol, both ends: the agent's request parser (any bytes a
// local user sends to the 0666 socket) and agentctl's reading of an answer. Whatever the parser accepts
// must survive the client's own encoding and parse back to the same request.
import AgentProtocol
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func controlRequestFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch ControlRequestParser.parse(bytes) {
    case .success(let request):
        if request.command == .apply || request.command == .revert {
            guard let id = request.id, !id.isEmpty else { fatalError("\(request.command) accepted without an id") }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let encoded = try? encoder.encode(request) else { fatalError("an accepted request cannot be encoded") }
        guard case .success(let again) = ControlRequestParser.parse(Array(encoded)), again == request else {
            fatalError("an accepted request does not parse back to itself after the client's encoding")
        }
    case .failure(let problem):
        guard !problem.description.isEmpty else { fatalError("a refusal without a message") }
    }
    if let response = try? JSONDecoder().decode(ControlResponse.self, from: Data(bytes)) {
        _ = response.isPermissionDenied
        if let status = response.status { _ = ControlText.status(status) }
        if let processes = response.processes { _ = ControlText.processes(processes) }
        if let history = response.history { _ = ControlText.history(history) }
    }
    return 0
}
