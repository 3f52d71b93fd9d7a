import Foundation
import Glibc
import LinuxSystem

/// Everything the agent demo prints. Lines come from the scenario and, concurrently, from the
/// thread reading the agent's log, so every write takes the lock and is one whole line, unbuffered.
final class AgentConsole: @unchecked Sendable {
    // @unchecked: `errorLines` and `abbreviation` are touched under `lock`.
    /// Show the agent's log lines with their key=value fields.
    let fullLog: Bool
    private let lock = NSLock()
    private var errorLines: [String] = []
    private var abbreviation: (long: String, short: String)?

    private static let labelWidth = 10

    init(fullLog: Bool) { self.fullLog = fullLog }

    func title() {
        say("hotpatch-demo: hotpatch-agent keeps a running service patched from a signed channel, live")
    }

    func phase(_ title: String) {
        say("")
        say(title)
    }

    /// `label` in the left column, `value` beside it; later lines of `value` under it.
    func field(_ label: String, _ value: String) {
        for (index, line) in value.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            say("  " + (index == 0 ? label : "").padding(toLength: Self.labelWidth, withPad: " ", startingAt: 0) + line)
        }
    }

    /// A line the demo service printed.
    func service(_ line: String, note: String? = nil) {
        say("  service | " + line + (note.map { "   (\($0))" } ?? ""))
    }

    /// From now on, agent log lines show `long` (the work directory) as `short`.
    func abbreviate(_ long: String, as short: String) {
        lock.lock()
        abbreviation = (long, short)
        lock.unlock()
    }

    /// A line of the agent's log (called from the reader thread). Error lines are also kept, for
    /// the scenario to fail on.
    func agent(_ raw: String) {
        let level = raw.split(separator: " ", maxSplits: 1).first.map(String.init) ?? ""
        lock.lock()
        if level == "error" || level == "critical" { errorLines.append(raw) }
        let abbreviation = self.abbreviation
        lock.unlock()
        var line = fullLog ? raw : Self.withoutFields(raw)
        if let abbreviation { line = line.replacingOccurrences(of: abbreviation.long, with: abbreviation.short) }
        say("  agent   | " + line)
    }

    /// Error lines the agent logged so far.
    var agentErrors: [String] {
        lock.lock()
        defer { lock.unlock() }
        return errorLines
    }

    /// A command run and what it printed, indented under it.
    func command(_ shown: String, output: String) {
        say("  $ " + shown)
        for line in output.split(separator: "\n", omittingEmptySubsequences: false).dropLast(output.hasSuffix("\n") ? 1 : 0) {
            say("    " + line)
        }
    }

    func finish(_ outcome: AgentScenario.Outcome) {
        if let error = outcome.error {
            say("")
            write("hotpatch-demo: \(outcome.interrupted ? "STOPPED" : "FAILED"): \(error)\n", to: STDERR_FILENO)
            return
        }
        say("")
        say(outcome.summary)
    }

    /// The demo cannot start at all.
    func refuse(_ text: String) {
        write("hotpatch-demo: \(text)\n", to: STDERR_FILENO)
    }

    func say(_ text: String) { write(text + "\n", to: STDOUT_FILENO) }

    /// One write(2) per line, under the lock. A closed reader (`| head`) loses the rest quietly:
    /// SIGPIPE is ignored, so the demo still cleans up behind itself.
    private func write(_ text: String, to descriptor: Int32) {
        lock.lock()
        defer { lock.unlock() }
        try? Descriptor.writeAll(descriptor, Array(text.utf8), subject: "the console")
    }

    /// The agent's stderr line without its trailing `key=value` fields: `<level> <message>`.
    /// Values are bare words or double-quoted strings with `\"` escapes (StderrLogHandler).
    static func withoutFields(_ line: String) -> String {
        var text = Substring(line)
        while let field = trailingField(of: text) { text = text[..<field] }
        return String(text)
    }

    /// Where the last ` key=value` of `text` starts (its space), if it ends with one.
    private static func trailingField(of text: Substring) -> Substring.Index? {
        var index = text.endIndex
        if text.last == "\"" {
            // A quoted value: find its opening quote, skipping escaped ones.
            index = text.index(before: index)
            while true {
                guard let quote = text[..<index].lastIndex(of: "\"") else { return nil }
                var backslashes = 0
                var scan = quote
                while scan > text.startIndex, text[text.index(before: scan)] == "\\" {
                    backslashes += 1
                    scan = text.index(before: scan)
                }
                index = quote
                if backslashes % 2 == 0 { break }
            }
        } else {
            guard let space = text.lastIndex(of: " ") else { return nil }
            index = text.index(after: space)
            guard let equals = text[index...].firstIndex(of: "=") else { return nil }
            index = equals
            // `index` is at "=": the key is before it.
            return keyStart(in: text, before: index)
        }
        // `index` is at the opening quote; "=" must precede it.
        guard index > text.startIndex, text[text.index(before: index)] == "=" else { return nil }
        return keyStart(in: text, before: text.index(before: index))
    }

    /// The space before a key ending at `equals`, if the key is a dotted lowercase name.
    private static func keyStart(in text: Substring, before equals: Substring.Index) -> Substring.Index? {
        guard let space = text[..<equals].lastIndex(of: " ") else { return nil }
        let key = text[text.index(after: space)..<equals]
        guard !key.isEmpty, key.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "." || $0 == "_" }) else { return nil }
        return space
    }
}
