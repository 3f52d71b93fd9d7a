import Foundation
import LinuxSystem

/// The Debian programs `hotpatch-pack build-deb` runs (apt-get, dpkg-source, dpkg-deb,
/// dpkg-checkbuilddeps, sha256sum), found in `PATH`.
package enum DebianTools {
    /// The Debian package each program comes from, for the error when it is missing.
    static let packages = ["apt-get": "apt", "dpkg-source": "dpkg-dev", "dpkg-checkbuilddeps": "dpkg-dev",
                           "dpkg-parsechangelog": "dpkg-dev", "dpkg-buildflags": "dpkg-dev", "dpkg-deb": "dpkg",
                           "dpkg": "dpkg", "sha256sum": "coreutils", "sh": "dash"]

    /// What a program printed (standard output, then standard error, joined) and its status.
    package struct Output: Sendable {
        package var status: Int32
        package var text: String
        /// The text without its blank ends.
        package var trimmed: String { text.trimmingCharacters(in: .whitespacesAndNewlines) }
        /// Its last `count` lines.
        package func tail(_ count: Int = 15) -> String {
            trimmed.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
        }
    }

    /// Runs `program` (a name looked up in `PATH`) with `arguments` in `directory`, standard
    /// error joined to standard output; throws only when it is missing or cannot be started.
    package static func run(_ program: String, _ arguments: [String], in directory: String? = nil,
                            environment: [String: String]? = nil) throws(PackError) -> Output {
        let path: String
        do throws(PackError) { path = try Tools.find(program) } catch {
            throw PackError("\(program) is not in PATH; hotpatch-pack build-deb needs it: apt-get install \(packages[program] ?? program)")
        }
        let script = #"cd "$1" || exit 125; shift; exec "$@" 2>&1"#
        let finished: ChildProcess.Finished
        do throws(SystemError) {
            finished = try ChildProcess.run("/bin/sh", ["-c", script, "build-deb", directory ?? ".", path] + arguments,
                                            environment: environment)
        } catch {
            throw PackError("Failed to run \(program): \(error)")
        }
        return Output(status: finished.status, text: String(decoding: finished.output + finished.errorOutput, as: UTF8.self))
    }

    /// The SHA-256 of each file, hex, in order.
    package static func sha256(_ paths: [String]) throws(PackError) -> [String] {
        guard !paths.isEmpty else { return [] }
        let absolute = paths.map(BuildDriver.absolute)
        let output = try run("sha256sum", ["--"] + absolute)
        guard output.status == 0 else { throw PackError("sha256sum failed: \(output.trimmed)") }
        let sums = output.text.split(separator: "\n").map { String($0.prefix { $0 != " " }) }
        guard sums.count == paths.count else { throw PackError("sha256sum printed \(sums.count) lines for \(paths.count) files: \(output.trimmed)") }
        return sums
    }

    /// Whether Debian version `candidate` is newer than `base` (`dpkg --compare-versions A gt B`);
    /// throws when dpkg cannot compare them (a malformed version).
    package static func isVersion(_ candidate: String, newerThan base: String) throws(PackError) -> Bool {
        let output = try run("dpkg", ["--compare-versions", candidate, "gt", base])
        guard output.trimmed.isEmpty, output.status <= 1 else {
            throw PackError("dpkg cannot compare versions \(candidate) and \(base): \(output.trimmed)")
        }
        return output.status == 0
    }

    /// The Debian architecture of this machine (`amd64`).
    package static func architecture() throws(PackError) -> String {
        let output = try run("dpkg", ["--print-architecture"])
        guard output.status == 0, !output.trimmed.isEmpty else { throw PackError("dpkg --print-architecture failed: \(output.trimmed)") }
        return output.trimmed
    }
}
