import ArgumentParser
import Artifact
import Foundation
import LinuxSystem

/// `hotpatch-pack benchmark-verify` (hidden): verification throughput against `sha256sum`.
struct BenchmarkVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark-verify",
        abstract: "Measure channel verification throughput against sha256sum on the same file.",
        discussion: """
            Builds a signed channel holding one file of --size bytes in a scratch folder, reads it \
            once to warm the page cache, then times sha256sum on it and the agent's verifier \
            (first with an empty store: copy into the store and hash the copy; then with the copy \
            already there). The ratio is verifier throughput over sha256sum throughput.

            Example:
              hotpatch-pack benchmark-verify --size 1G --directory /var/tmp
            """,
        shouldDisplay: false
    )

    @Option(help: ArgumentHelp("The file size: bytes, or with K, M or G (binary units).", valueName: "SIZE"))
    var size: String = "1G"

    @Option(help: ArgumentHelp("Where to create the scratch channel.", valueName: "DIR"))
    var directory: String = "/var/tmp"

    @Flag(help: "Keep the scratch folder.")
    var keep = false

    var byteCount: UInt64? {
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        guard let last = size.last else { return nil }
        if let unit = units[Character(last.uppercased())] { return UInt64(size.dropLast()).map { $0 * unit } }
        return UInt64(size)
    }

    func validate() throws {
        guard let count = byteCount, count > 0 else { throw ValidationError("--size \(size): expected e.g. 1G, 512M, 4096") }
    }

    func run() throws {
        let count = byteCount ?? 0
        let root = directory + "/hotpatch-pack-bench-\(UUID().uuidString)"
        defer { if !keep { try? FileManager.default.removeItem(atPath: root) } }
        let channel = root + "/channel", keys = root + "/keys"
        for folder in [root, channel, keys, channel + "/baselines", channel + "/baselines/bench"] {
            try ChannelWorkspace.makeDirectory(folder)
        }
        let blob = channel + "/baselines/bench/blob.bin"
        try writeBlob(blob, count: count)
        let digest = try ChannelFileDigest.compute(path: blob) // also warms the page cache

        let key = ChannelSigningKey.generate()
        try ChannelWorkspace.writeAtomically(Array(key.publicKey().fileText.utf8), to: keys + "/bench.pub", mode: 0o644)
        let reference = ChannelIndex.FileReference(path: "baselines/bench/blob.bin", sha256: digest.sha256, length: digest.length)
        let index = ChannelIndex(version: 1, expires: RFC3339.format(Date().timeIntervalSince1970 + 86_400), releases: [
            .baseline(id: "bench", planned: true, description: "benchmark", cves: [],
                      files: [.init(kind: .file(destination: "/opt/bench/blob.bin", mode: 0o644), file: reference)]),
        ])
        try ChannelWorkspace.writeAtomically(index.encoded(), to: channel + "/index.json", mode: 0o644)
        try ChannelWorkspace.writeAtomically(Array(try key.sign(index.encoded()).fileText.utf8),
                                             to: channel + "/index.json.sig", mode: 0o644)

        let clock = ContinuousClock()
        var sumOutput = ""
        let sumTime = try clock.measure { sumOutput = try runSha256sum(blob) }
        guard sumOutput.hasPrefix(digest.sha256) else { throw PackError("sha256sum disagrees: \(sumOutput)") }
        let verifier = ChannelVerifier(channelDirectory: channel, trustedKeysDirectory: keys, storeDirectory: root + "/store")
        let firstTime = try clock.measure { _ = try verifier.verify(highestAcceptedVersion: nil, now: Date()) }
        let againTime = try clock.measure { _ = try verifier.verify(highestAcceptedVersion: nil, now: Date()) }

        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        func rate(_ duration: Duration) -> String { String(format: "%.0f MiB/s", Double(count) / 1_048_576 / seconds(duration)) }
        print("file: \(count) bytes in \(root)")
        print(String(format: "sha256sum:                       %.3f s  %@", seconds(sumTime), rate(sumTime)))
        print(String(format: "verify, empty store (copy+hash): %.3f s  %@  ratio %.2f", seconds(firstTime), rate(firstTime),
                     seconds(sumTime) / seconds(firstTime)))
        print(String(format: "verify, copy already in store:   %.3f s  %@  ratio %.2f", seconds(againTime), rate(againTime),
                     seconds(sumTime) / seconds(againTime)))
    }

    private func writeBlob(_ path: String, count: UInt64) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = Foundation.FileHandle(forWritingAtPath: path)
        else { throw PackError("Failed to create \(path)") }
        defer { try? handle.close() }
        var generator = SystemRandomNumberGenerator()
        var block = (0..<(1 << 20) / 8).map { _ in generator.next() as UInt64 }
        var written: UInt64 = 0
        while written < count {
            block[0] = written
            let bytes = block.withUnsafeBytes { Data($0.prefix(Int(min(UInt64($0.count), count - written)))) }
            try handle.write(contentsOf: bytes)
            written += UInt64(bytes.count)
        }
    }

    private func runSha256sum(_ path: String) throws -> String {
        let finished = try ChildProcess.run("/usr/bin/sha256sum", [path])
        guard finished.status == 0 else {
            throw PackError("sha256sum \(path) exited with status \(finished.status): \(String(decoding: finished.errorOutput, as: UTF8.self))")
        }
        return String(decoding: finished.output, as: UTF8.self)
    }
}
