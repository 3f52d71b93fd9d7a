import Foundation
import Glibc
import LinuxSystem

/// The work directory of one `hotpatch-pack build`: `original/` and `patched/` copies of the
/// source, the compiler wrapper and its log, the builds' output, one folder per target for the
/// generator. A temporary directory removed at the end, or the `--keep-work` directory, kept.
package struct WorkDirectory: Sendable {
    /// Its absolute path, symbolic links resolved (the compiler wrapper records resolved paths).
    package let root: String
    /// Whether it stays after the command (`--keep-work`).
    package let isKept: Bool

    /// The copy of the source as released.
    package var original: String { root + "/original" }
    /// The copy with the diffs applied.
    package var patched: String { root + "/patched" }
    /// Where each copy is moved for its build, so both builds see the same absolute path (the
    /// compiler writes it into `__FILE__` strings and DWARF; two paths would make every function
    /// that asserts look changed).
    package var buildPath: String { root + "/build" }
    /// The compiler wrapper's folder.
    package var wrapperFolder: String { root + "/wrapper" }
    /// The folder the generator writes one target's files into.
    package func targetFolder(_ number: Int, name: String) -> String { root + "/targets/\(number)-\(name)" }
    /// The full output of one build (`original` or `patched`).
    package func buildLog(_ name: String) -> String { root + "/\(name)-build.log" }

    /// Creates the work directory: `kept` when given (it must not exist, or be an empty
    /// directory), else a new temporary directory. `source` is the tree to be copied: the work
    /// directory must not lie inside it.
    package static func create(kept: String?, source: String) throws(PackError) -> WorkDirectory {
        let path: String
        if let kept {
            if let info = try? Files.linkStatus(kept) {
                guard info.st_mode & S_IFMT == S_IFDIR, (try? Files.list(kept))?.isEmpty == true else {
                    throw PackError("--keep-work \(kept) already exists and is not an empty directory; name a new directory (the work directory is never reused)")
                }
            } else {
                do throws(SystemError) { try Files.makeDirectories(kept, mode: 0o755) } catch { throw PackError("Failed to create --keep-work \(kept): \(error)") }
            }
            path = kept
        } else {
            let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            var template = Array((base + "/hotpatch-pack-build.XXXXXX").utf8CString)
            guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) != nil }) else {
                throw PackError("Failed to create a work directory in \(base): \(SystemError.errnoText(errno)) (set TMPDIR, or give --keep-work DIR)")
            }
            path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let root: String
        do throws(SystemError) { root = try Files.realPath(path) } catch { throw PackError(error) }
        let work = WorkDirectory(root: root, isKept: kept != nil)
        if let sourceRoot = try? Files.realPath(source), root == sourceRoot || root.hasPrefix(sourceRoot + "/") {
            work.remove()
            throw PackError("The work directory \(root) lies inside --source \(source), which is copied into it; give --keep-work a directory outside the source")
        }
        return work
    }

    /// Removes the work directory unless it is kept.
    package func remove() {
        if !isKept { try? FileManager.default.removeItem(atPath: root) }
    }
}

/// The copies of the source tree and the diffs applied to one of them.
package enum SourceTrees {
    /// Copies the directory `source` to `destination` (which must not exist) the way `cp -a`
    /// does: modes, times, symbolic links as links.
    package static func copy(_ source: String, to destination: String) throws(PackError) {
        let copy = try run(try Tools.find("cp"), ["-a", "--", source + "/.", destination])
        guard copy.status == 0 else {
            throw PackError("Failed to copy --source \(source) to \(destination) (cp -a exited with status \(copy.status)): \(copy.text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Applies `diffs`, in order, to the tree at `root` with GNU patch (`-p1`), each checked with
    /// `--dry-run` first. Throws for the first diff that does not apply, naming it, the file and
    /// the hunk; the tree may then hold the diffs before it (it is a copy in the work directory).
    package static func apply(_ diffs: [UnifiedDiff], to root: String) throws(PackError) {
        let patch = try Tools.find("patch")
        for diff in diffs {
            let arguments = ["-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-d", root, "-i", absolute(diff.path)]
            let dryRun = try run(patch, arguments + ["--dry-run"])
            guard dryRun.status == 0 else { throw refusal(diff, output: dryRun.text) }
            let applied = try run(patch, arguments + ["--silent"])
            guard applied.status == 0 else { throw refusal(diff, output: applied.text) }
        }
    }

    /// The error for a diff GNU patch would not apply: each failed hunk with its file and the
    /// diff line of its `@@`, then patch's own words.
    static func refusal(_ diff: UnifiedDiff, output: String) -> PackError {
        var file: String?
        var failures: [String] = []
        for line in output.split(separator: "\n").map(String.init) {
            for prefix in ["checking file ", "patching file "] where line.hasPrefix(prefix) {
                file = String(line.dropFirst(prefix.count))
            }
            if line.hasPrefix("Hunk #"), line.contains(" FAILED"),
               let number = Int(line.dropFirst("Hunk #".count).prefix { $0.isNumber }) {
                let hunk = diff.files.first { $0.path == file }?.hunks.first { $0.number == number }
                let header = hunk.map { " (diff line \($0.line), @@ -\($0.oldStart),\($0.oldCount) +\($0.newStart),\($0.newCount) @@)" } ?? ""
                failures.append("\(file ?? "?"): hunk #\(number)\(header) does not match the source")
            } else if line.hasPrefix("Reversed (or previously applied) patch detected") {
                failures.append("\(file ?? "?"): the change is already in the source (or the diff is reversed)")
            } else if line.hasPrefix("can't find file to patch") || line.hasPrefix("No file to patch") {
                failures.append("a file the diff changes is not in the source (paths are taken with -p1, relative to --source)")
            }
        }
        let summary = failures.isEmpty ? "" : failures.joined(separator: "; ") + ". "
        return PackError("--diff \(diff.path) does not apply to the source: \(summary)GNU patch said:\n"
                         + output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// `path` made absolute against the current directory (patch runs with `-d`).
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// What a helper program printed (standard output, then standard error) and its status.
    struct ToolOutput {
        var status: Int32
        var text: String
    }

    /// Runs `path` with `arguments`, its standard error joined to its standard output (so
    /// patch's "checking file" and "Hunk #1 FAILED" lines keep their order); throws only when it
    /// cannot be started.
    static func run(_ path: String, _ arguments: [String]) throws(PackError) -> ToolOutput {
        let finished: ChildProcess.Finished
        do throws(SystemError) {
            finished = try ChildProcess.run("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>&1", path] + arguments)
        } catch {
            throw PackError(error)
        }
        return ToolOutput(status: finished.status,
                          text: String(decoding: finished.output + finished.errorOutput, as: UTF8.self))
    }
}

/// The programs `hotpatch-pack build` runs, found in `PATH`.
package enum Tools {
    /// The absolute path of `name` in `PATH`; throws naming the Debian package when it is missing.
    package static func find(_ name: String) throws(PackError) -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") where !folder.isEmpty {
            let candidate = "\(folder)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        let package = ["patch": "patch", "cp": "coreutils", "sh": "dash"][name] ?? name
        throw PackError("\(name) is not in PATH (\(path)); hotpatch-pack build needs it: apt-get install \(package)")
    }
}
