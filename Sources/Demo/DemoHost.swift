import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem

/// The demo's private temporary directory, laid out like a small host and its publisher. Nothing
/// the demo or the agent writes is outside it: the agent gets every path by flag.
struct DemoHost {
    /// The temporary directory itself.
    let root: String

    /// The C sources compiled: the service and its patch objects.
    var build: String { root + "/build" }
    /// The publisher's side: key pair and working channel (hotpatch-pack).
    var publisher: String { root + "/publisher" }
    /// The channel the agent reads: a copy of the publisher's, refreshed after each publish.
    var channel: String { root + "/channel" }
    /// The agent's trusted public keys.
    var keys: String { root + "/keys" }
    /// The agent's configuration file: empty, so the embedded defaults apply (never /etc's).
    var config: String { root + "/agent.toml" }
    /// The agent's state directory.
    var state: String { root + "/state" }
    /// The agent's runtime directory (control.sock).
    var runtime: String { root + "/run" }
    var socket: String { runtime + "/control.sock" }
    /// Stands for /run/reboot-required.
    var rebootRequired: String { root + "/reboot-required" }
    /// The Prometheus textfile the agent writes.
    var metrics: String { root + "/hotpatch.prom" }
    /// The demo service's installation: its executable and the files baselines install.
    var service: String { root + "/opt/demo-service" }
    var serviceExecutable: String { service + "/demo-service" }
    var serviceVersionFile: String { service + "/VERSION" }
    /// Where the channel copy is staged before it is renamed into place.
    private var staging: String { root + "/.staging" }

    /// Creates a fresh temporary directory and the folders inside it.
    static func create() throws -> DemoHost {
        let host: DemoHost
        do { host = DemoHost(root: try TemporaryDirectory.create(prefix: "hotpatch-demo")) } catch { throw DemoFailure("\(error)") }
        // Mode 0755: the service runs as root here, but a channel, store and patch objects readable
        // by all is what the agent expects (patched processes of any user open the patch object).
        for directory in [host.build, host.publisher, host.channel, host.keys, host.runtime, host.service, host.staging] {
            try FileSystem.makeDirectory(directory)
        }
        try FileSystem.write("# hotpatch-demo: empty, so the agent runs on its embedded defaults\n", to: host.config)
        return host
    }

    /// Removes the whole directory; true when it is gone.
    func remove() -> Bool {
        try? FileManager.default.removeItem(atPath: root)
        return !FileManager.default.fileExists(atPath: root)
    }

    /// Copies the publisher's channel to the agent's as a mirror would after `publish`: release
    /// files first (they never change once published), then index.json and its signature,
    /// renamed into place back to back, so the agent sees one change.
    func mirror(from source: String) throws {
        let manager = FileManager.default
        guard let walker = manager.enumerator(atPath: source) else { throw DemoFailure("cannot read \(source)") }
        var indexFiles: [String] = []
        while let relative = walker.nextObject() as? String {
            let from = source + "/" + relative
            let to = channel + "/" + relative
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: from, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                try FileSystem.makeDirectory(to)
            } else if relative == "index.json" || relative == "index.json.sig" {
                indexFiles.append(relative)
            } else if !manager.fileExists(atPath: to) {
                try stageAndRename(from, to: to)
            }
        }
        guard indexFiles.count == 2 else { throw DemoFailure("the publisher's channel \(source) has no signed index") }
        let staged = try indexFiles.sorted().map { name in (try stage(source + "/" + name), channel + "/" + name) }
        for (from, to) in staged {
            do { try Files.rename(from, to: to) } catch { throw DemoFailure("\(error)") }
        }
    }

    private func stageAndRename(_ from: String, to: String) throws {
        let staged = try stage(from)
        do { try Files.rename(staged, to: to) } catch { throw DemoFailure("\(error)") }
    }

    /// Copies `path` into the staging folder (mode 0644) and returns the copy's path.
    private func stage(_ path: String) throws -> String {
        let copy = staging + "/" + UUID().uuidString
        do {
            try Data(contentsOf: URL(fileURLWithPath: path)).write(to: URL(fileURLWithPath: copy))
        } catch {
            throw DemoFailure("copying \(path) failed: \(error)")
        }
        chmod(copy, 0o644)
        return copy
    }
}

/// The few file operations the demo makes, with errors a person can read.
enum FileSystem {
    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
        } catch {
            throw DemoFailure("could not create \(path): \(error)")
        }
    }

    static func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) } catch {
            throw DemoFailure("could not write \(path): \(error)")
        }
        chmod(path, mode)
    }

    static func read(_ path: String) -> String? {
        (try? Data(contentsOf: URL(fileURLWithPath: path))).map { String(decoding: $0, as: UTF8.self) }
    }

    static func copy(_ from: String, to: String, mode: mode_t) throws {
        do { try Data(contentsOf: URL(fileURLWithPath: from)).write(to: URL(fileURLWithPath: to)) } catch {
            throw DemoFailure("could not copy \(from) to \(to): \(error)")
        }
        chmod(to, mode)
    }
}
