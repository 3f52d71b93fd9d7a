import Foundation
import LinuxSystem

/// Runs the publisher's `--build` command in one copy of the source.
package enum BuildRunner {
    /// How many lines of a failed build's output the error quotes.
    package static let quotedLines = 20

    /// Runs `command` with `/bin/sh -c` in `directory` with `environment`, standard input
    /// /dev/null, standard output and error into `log`. `label` names the build in the error
    /// ("the build of the source as released"): its exit status and the last lines of its output.
    package static func run(_ command: String, in directory: String, environment: [String: String], log: String,
                            label: String) throws(PackError) {
        let script = #"exec >"$2" 2>&1 </dev/null; cd "$1" || exit 125; exec /bin/sh -c "$3""#
        let status: Int32
        do throws(SystemError) {
            let child = try ChildProcess.spawn("/bin/sh", ["-c", script, "hotpatch-pack-build", directory, log, command],
                                               environment: environment)
            status = ChildProcess.waitForExit(child)
        } catch {
            throw PackError("Failed to start \(label): \(error)")
        }
        guard status == 0 else {
            let output = (try? Files.read(log, limit: 256 << 20)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let tail = output.split(separator: "\n", omittingEmptySubsequences: false)
                .reversed().drop { $0.isEmpty }.prefix(quotedLines).reversed().joined(separator: "\n")
            throw PackError("\(label.prefix(1).uppercased() + label.dropFirst()) failed with exit status \(status) (--build \(command), run with sh -c in \(directory)); the last \(quotedLines) lines of its output:\n"
                            + tail + "\n(the whole output is in \(log))")
        }
    }
}
