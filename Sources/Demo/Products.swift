import Foundation
import Glibc
import HotpatchFixtures

/// The product binaries the agent demo runs: built with it, in the same folder.
enum Products {
    static let names = ["hotpatch-agent", "agentctl", "hotpatch-pack"]

    /// The folder of this executable (from /proc/self/exe, so a symbolic link or a relative
    /// invocation does not mislead it).
    static func directory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return ChannelBuilder.productsDirectory() }
        let path = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (path as NSString).deletingLastPathComponent
    }

    /// Which binaries are missing from `directory`, as a message for a person; nil when all are there.
    static func missing(in directory: String) -> String? {
        let absent = names.filter { access("\(directory)/\($0)", X_OK) != 0 }
        guard !absent.isEmpty else { return nil }
        return "\(absent.joined(separator: ", ")) not found beside hotpatch-demo in \(directory). "
            + "Build them too: swift build -c release (scripts/demo does), or run hotpatch-demo engine for the Engine alone."
    }

    /// The path of product `name`.
    static func path(_ name: String, in directory: String) -> String { "\(directory)/\(name)" }
}
