import Artifact
import Engine
import Foundation
import Glibc

/// The agent's state file, `state.json` in the state directory, written atomically and sealed
/// with a SHA-256 trailer so a torn, truncated or altered file is reported, never silently reset.
///
/// File layout: the JSON document, a newline, then `sha256 <64 hex digits of the JSON bytes>\n`.
public final class StateStore: Sendable {
    /// The state directory.
    public let directory: String
    /// The state file.
    public var path: String { directory + "/state.json" }

    /// Serialises saves within the process: removing crash leftovers must never race a save in flight.
    private static let saving = NSLock()
    private static let trailerPrefix = "sha256 "
    /// The state directory's mode: 0711, others may pass through to the patch objects in
    /// `store/objects/` (which every patched process opens by name) but not list what is inside;
    /// everything private below it has a mode of its own (`state.json` 0600, `backup/` and the
    /// store's install files 0700). 0700 would leave every process of another user to load its
    /// patch from a memfd copy (memory per process, refused by seccomp filters that deny
    /// `memfd_create`).
    public static let directoryMode: mode_t = 0o711
    /// A state file is small (history is bounded); anything larger is not ours.
    private static let sizeLimit = 16 << 20

    /// A store for the state file in `directory`.
    public init(directory: String) {
        self.directory = directory
    }

    /// Reads the state: a fresh `AgentState()` when there is no file; `AgentCoreError.corruptState`
    /// when the file is torn, truncated, altered or not a state document.
    public func load() throws -> AgentState {
        guard let bytes = try FileSystem.readIfPresent(path, limit: Self.sizeLimit) else { return AgentState() }
        let body = try Self.unseal(bytes, path: path)
        let probe: FormatProbe
        let state: AgentState
        do {
            probe = try JSONDecoder().decode(FormatProbe.self, from: Data(body))
        } catch {
            throw AgentCoreError.corruptState(path: path, reason: "the sealed JSON has no formatVersion: \(error)")
        }
        guard probe.formatVersion <= AgentState.currentFormatVersion else {
            throw AgentCoreError.unsupportedStateFormat(path: path, formatVersion: probe.formatVersion)
        }
        do {
            state = try JSONDecoder().decode(AgentState.self, from: Data(body))
        } catch {
            throw AgentCoreError.corruptState(path: path, reason: "the sealed JSON is not a state document: \(error)")
        }
        return state
    }

    /// Writes `state` atomically (temporary file beside it, fsync, rename, fsync of the directory),
    /// mode 0600, creating the directory (`directoryMode`) if missing; leftovers of an interrupted save are removed.
    public func save(_ state: AgentState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let body = Array(try encoder.encode(state))
        let sealed = body + Array("\n\(Self.trailerPrefix)\(ChannelKeys.sha256(body))\n".utf8)
        Self.saving.lock()
        defer { Self.saving.unlock() }
        try FileSystem.makeDirectories(directory, mode: Self.directoryMode)
        try removeLeftovers()
        try FileSystem.writeAtomically(path, bytes: sealed, mode: 0o600)
    }

    /// Removes temporary files a save left behind when the agent died before its rename.
    private func removeLeftovers() throws(AgentCoreError) {
        let prefix = FileSystem.temporaryPrefix(for: path)
        for name in try FileSystem.list(directory) where name.hasPrefix(prefix) {
            try FileSystem.removeFile(directory + "/" + name)
        }
    }

    /// The JSON body of a sealed file, after checking its trailer.
    private static func unseal(_ bytes: [UInt8], path: String) throws(AgentCoreError) -> ArraySlice<UInt8> {
        let trailerLength = trailerPrefix.utf8.count + 64 + 1
        guard !bytes.isEmpty else { throw .corruptState(path: path, reason: "the file is empty") }
        guard bytes.count > trailerLength, bytes.last == UInt8(ascii: "\n"),
              bytes[bytes.count - trailerLength - 1] == UInt8(ascii: "\n")
        else { throw .corruptState(path: path, reason: "the SHA-256 trailer is missing, so the file was cut short") }
        let trailer = String(decoding: bytes[(bytes.count - trailerLength)..<(bytes.count - 1)], as: UTF8.self)
        let body = bytes[..<(bytes.count - trailerLength - 1)]
        guard trailer.hasPrefix(trailerPrefix) else {
            throw .corruptState(path: path, reason: "the SHA-256 trailer is malformed")
        }
        let recorded = trailer.dropFirst(trailerPrefix.utf8.count)
        let actual = ChannelKeys.sha256(Array(body))
        guard recorded == actual else {
            throw .corruptState(path: path, reason: "the content does not match its SHA-256 trailer (recorded \(recorded), actual \(actual))")
        }
        return body
    }

    /// Only the version, read first so a newer format is named as such rather than called corrupt.
    private struct FormatProbe: Decodable {
        var formatVersion: Int
    }
}
