import Foundation
import LinuxSystem

/// A unified diff (`diff -u`, `diff -ruN`, `git diff`) as `hotpatch-pack build` applies it: the
/// files it changes, each with its hunks, paths taken with one leading component stripped (`-p1`:
/// `a/src/x.c` and `b/src/x.c` both name `src/x.c`). Parsing checks the shape only (headers, hunk
/// headers, hunk line counts); whether the hunks fit the source is GNU patch's question.
package struct UnifiedDiff: Sendable, Equatable {
    /// One file the diff changes.
    package struct FileChange: Sendable, Equatable {
        /// The path it changes, relative to the source tree's root (after `-p1`).
        package var path: String
        /// The diff creates the file (its old side is `/dev/null`).
        package var isNewFile: Bool
        /// The diff deletes the file (its new side is `/dev/null`).
        package var isDeletedFile: Bool
        /// The line of the diff its `---` header is on, from 1.
        package var line: Int
        /// Its hunks, in order.
        package var hunks: [Hunk]
    }

    /// One `@@ -a,b +c,d @@` hunk.
    package struct Hunk: Sendable, Equatable {
        /// Its number within its file, from 1 (GNU patch numbers them the same way).
        package var number: Int
        /// The line of the diff its `@@` header is on, from 1.
        package var line: Int
        /// The first old line and how many old lines it covers.
        package var oldStart: Int
        package var oldCount: Int
        /// The first new line and how many new lines it covers.
        package var newStart: Int
        package var newCount: Int
    }

    /// The diff file, as given (for messages).
    package var path: String
    /// The files it changes, in order.
    package var files: [FileChange]

    /// Reads and parses the diff at `path`.
    package static func load(path: String) throws(PackError) -> UnifiedDiff {
        let bytes: [UInt8]
        do throws(SystemError) { bytes = try Files.read(path, limit: 256 << 20) } catch { throw PackError("Failed to read --diff \(path): \(error)") }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// Parses `text`, the contents of the diff file `path`. Throws, naming the file and the line,
    /// for a `---` without `+++`, a file header without hunks, a malformed `@@` line, a hunk whose
    /// lines do not add up to its counts, a path that leaves the source tree, and a diff with no
    /// file change at all.
    package static func parse(_ text: String, path: String) throws(PackError) -> UnifiedDiff {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        func fail(_ line: Int, _ why: String) -> PackError { PackError("Malformed diff \(path), line \(line): \(why)") }

        var files: [FileChange] = []
        var index = 0
        while index < lines.count {
            let line = lines[index]
            // Anything before a `---` header is commentary (`diff --git`, `index …`, `new file
            // mode`, a commit message): patch(1) skips it too.
            guard line.hasPrefix("--- ") else { index += 1; continue }
            let headerLine = index + 1
            guard index + 1 < lines.count, lines[index + 1].hasPrefix("+++ ") else {
                throw fail(headerLine, "'---' header without a '+++' line after it")
            }
            let oldPath = try stripped(headerPath(line), line: headerLine, fail: fail)
            let newPath = try stripped(headerPath(lines[index + 1]), line: headerLine + 1, fail: fail)
            guard oldPath != nil || newPath != nil else { throw fail(headerLine, "both sides are /dev/null") }
            index += 2
            var hunks: [Hunk] = []
            while index < lines.count, lines[index].hasPrefix("@@") {
                let hunk = try hunkHeader(lines[index], line: index + 1, number: hunks.count + 1, fail: fail)
                index += 1
                var oldLeft = hunk.oldCount, newLeft = hunk.newCount
                while oldLeft > 0 || newLeft > 0 {
                    guard index < lines.count else {
                        throw fail(index, "hunk #\(hunk.number) of \(newPath ?? oldPath!) ends early: \(oldLeft) old and \(newLeft) new lines missing (counts in the @@ line at line \(hunk.line))")
                    }
                    let body = lines[index]
                    // An empty line is a context line whose leading space an editor or mailer removed.
                    switch body.first ?? " " {
                    case " ": oldLeft -= 1; newLeft -= 1
                    case "-": oldLeft -= 1
                    case "+": newLeft -= 1
                    case "\\": break
                    default:
                        throw fail(index + 1, "line in hunk #\(hunk.number) of \(newPath ?? oldPath!) starts with neither ' ', '-', '+' nor '\\' (\(oldLeft) old and \(newLeft) new lines still expected by the @@ line at line \(hunk.line))")
                    }
                    guard oldLeft >= 0, newLeft >= 0 else {
                        throw fail(index + 1, "hunk #\(hunk.number) of \(newPath ?? oldPath!) has more lines than its @@ line at line \(hunk.line) counts")
                    }
                    index += 1
                }
                // "\ No newline at end of file" after the hunk's last line.
                if index < lines.count, lines[index].hasPrefix("\\") { index += 1 }
                hunks.append(hunk)
            }
            guard !hunks.isEmpty else { throw fail(headerLine, "file \(newPath ?? oldPath!) has a header but no '@@' hunk") }
            files.append(FileChange(path: (newPath ?? oldPath)!, isNewFile: oldPath == nil, isDeletedFile: newPath == nil,
                                    line: headerLine, hunks: hunks))
        }
        guard !files.isEmpty else {
            throw PackError("Malformed diff \(path): it changes no file (no '---'/'+++' header with '@@' hunks; give a unified diff, diff -u or git diff)")
        }
        return UnifiedDiff(path: path, files: files)
    }

    /// The path of a `---`/`+++` line: up to a tab (a timestamp follows), C-quoted by git when it
    /// holds unusual characters.
    private static func headerPath(_ line: String) -> String {
        var rest = String(line.dropFirst(4))
        if let tab = rest.firstIndex(of: "\t") { rest = String(rest[..<tab]) }
        if rest.hasPrefix("\""), rest.hasSuffix("\""), rest.count >= 2 {
            return unquoted(String(rest.dropFirst().dropLast()))
        }
        // diff -u pads some paths with trailing spaces; git never writes them.
        while rest.hasSuffix(" ") { rest.removeLast() }
        return rest
    }

    /// Git's C-style quoting undone (`\"`, `\\`, `\t`, `\n`, octal bytes).
    private static func unquoted(_ quoted: String) -> String {
        var bytes: [UInt8] = []
        var input = Array(quoted.utf8)[...]
        while let byte = input.popFirst() {
            guard byte == UInt8(ascii: "\\"), let next = input.popFirst() else { bytes.append(byte); continue }
            switch next {
            case UInt8(ascii: "t"): bytes.append(9)
            case UInt8(ascii: "n"): bytes.append(10)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = Int(next - UInt8(ascii: "0"))
                for _ in 0..<2 {
                    guard let digit = input.first, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(digit) else { break }
                    value = value * 8 + Int(input.removeFirst() - UInt8(ascii: "0"))
                }
                bytes.append(UInt8(truncatingIfNeeded: value))
            default: bytes.append(next)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `path` with its first component removed (`-p1`), nil for `/dev/null`; refuses a path that
    /// has nothing after that component or climbs out of the tree.
    private static func stripped(_ path: String, line: Int, fail: (Int, String) -> PackError) throws(PackError) -> String? {
        if path == "/dev/null" { return nil }
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !path.hasPrefix("/"), components.count >= 2 else {
            throw fail(line, "path '\(path)' has no directory to strip: diffs are applied with -p1, so paths need a leading component (a/\(path), as git diff and diff -ru of two trees write them)")
        }
        let rest = components.dropFirst()
        guard !rest.contains("..") else { throw fail(line, "path '\(path)' climbs out of the source tree ('..')") }
        return rest.joined(separator: "/")
    }

    /// Parses `@@ -a[,b] +c[,d] @@[ section]`; a missing count is 1.
    private static func hunkHeader(_ text: String, line: Int, number: Int, fail: (Int, String) -> PackError) throws(PackError) -> Hunk {
        let words = text.split(separator: " ", omittingEmptySubsequences: true)
        func range(_ word: Substring, sign: Character) -> (Int, Int)? {
            guard word.first == sign else { return nil }
            let parts = word.dropFirst().split(separator: ",", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let start = Int(parts[0]), start >= 0 else { return nil }
            guard parts.count == 2 else { return (start, 1) }
            guard let count = Int(parts[1]), count >= 0 else { return nil }
            return (start, count)
        }
        guard words.count >= 4, words[0] == "@@", words[3] == "@@",
              let old = range(words[1], sign: "-"), let new = range(words[2], sign: "+") else {
            throw fail(line, "malformed hunk header '\(text)' (expected '@@ -START,COUNT +START,COUNT @@')")
        }
        return Hunk(number: number, line: line, oldStart: old.0, oldCount: old.1, newStart: new.0, newCount: new.1)
    }
}
