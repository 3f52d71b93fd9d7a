// libFuzzer entry point for agent.toml: TOMLKit (toml++ underneath) and the agent's own walk over the
// table (types, paths, durations, windows, exclusions, the line finder and the typo suggestion).
// Whatever the parser accepts must also pass `validated()`, the check flags and code go through.

@_cdecl("LLVMFuzzerTestOneInput")
public func configurationFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    // As `AgentConfiguration.load` does: only UTF-8 text reaches the parser.
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else { return 0 }
    do {
        let configuration = try AgentConfiguration.parse(text, path: "agent.toml")
        // TOMLKit passes a C string: nothing after a NUL may be silently dropped.
        guard !text.utf8.contains(0) else { fatalError("text with a NUL byte was accepted") }
        do {
            _ = try configuration.validated()
        } catch {
            fatalError("a parsed configuration fails validation: \(error)")
        }
        _ = configuration.socketPath
        _ = configuration.rebootWindow?.description
    } catch let error as AgentCoreError {
        guard case .configuration(let path, _, let reason) = error, path == "agent.toml", !reason.isEmpty else {
            fatalError("a refusal that does not name the file and a reason: \(error)")
        }
    } catch {
        fatalError("an error outside AgentCoreError escaped: \(error)")
    }
    return 0
}
