@_exported import HotpatchFixtures
import Foundation

/// The repository's root, found from this file's place in it (Sources/TestSupport/).
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The text of `relativePath` in the repository (a doc, a man page, a fixture).
public func repositoryFile(_ relativePath: String) throws -> String {
    try String(contentsOfFile: repositoryRoot + "/" + relativePath, encoding: .utf8)
}

/// The package's built executables, beside the running test bundle.
public enum Products {
    /// The build products folder.
    public static let directory = ChannelBuilder.productsDirectory()
    /// The built `agentctl`.
    public static let agentctl = directory + "/agentctl"
    /// The built `hotpatch-agent`.
    public static let hotpatchAgent = directory + "/hotpatch-agent"
    /// The built `hotpatch-pack`.
    public static let hotpatchPack = directory + "/hotpatch-pack"
}

/// Runs blocking `work` on a thread of its own, so a test never holds one of the few cooperative
/// threads (two on the 2-CPU machines) that an in-process server under test needs.
public func blocking<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}

extension Program {
    /// `run` on a thread of its own (see `blocking`), for async tests.
    public static func run(_ program: String, _ arguments: [String] = [], environment: [String: String]? = nil,
                           in directory: String? = nil, timeoutSeconds: Double = defaultTimeoutSeconds) async throws -> ProgramRun {
        try await blocking {
            Result { try run(program, arguments, environment: environment, in: directory, timeoutSeconds: timeoutSeconds) }
        }.get()
    }

    /// `succeed` on a thread of its own (see `blocking`), for async tests.
    public static func succeed(_ program: String, _ arguments: [String] = [], environment: [String: String]? = nil,
                               in directory: String? = nil, timeoutSeconds: Double = defaultTimeoutSeconds) async throws -> ProgramRun {
        try await blocking {
            Result { try succeed(program, arguments, environment: environment, in: directory, timeoutSeconds: timeoutSeconds) }
        }.get()
    }
}
