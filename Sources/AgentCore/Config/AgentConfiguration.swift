import Artifact
import LinuxSystem
import TOMLKit

/// What the agent does with a baseline or fix that needs a reboot.
public enum RebootPolicy: String, Sendable, CaseIterable {
    /// Install, and never ask for a reboot (the files on disk still say one is required).
    case never
    /// Install and ask: write /run/reboot-required, log why, show it in status.
    case request
    /// Install, ask, and reboot with `systemctl reboot` inside `reboot_window` (any time when unset).
    case auto
}

/// The agent's configuration: `/etc/hotpatch-agent/agent.toml`, each key overridable by a flag.
/// Every key, its default and its flag: docs/CONFIGURATION.md.
public struct AgentConfiguration: Sendable, Equatable {
    /// Where the configuration is read from when `--config` is not given.
    public static let defaultPath = "/etc/hotpatch-agent/agent.toml"

    /// `channel`: the channel directory the agent reads (never writes).
    public var channelDirectory = "/var/lib/hotpatch-agent/channel"
    /// `trusted_keys`: the directory of trusted Ed25519 public keys, one file a key.
    public var trustedKeysDirectory = "/etc/hotpatch-agent/keys"
    /// `state_dir`: the agent's persistent state (state.json, the verified store, install backups).
    public var stateDirectory = "/var/lib/hotpatch-agent"
    /// `runtime_dir`: the runtime directory holding the control socket.
    public var runtimeDirectory = "/run/hotpatch-agent"
    /// `poll_interval`: seconds between channel polls (the channel is also watched for changes); 1 s to 3650 days.
    public var pollIntervalSeconds = 300
    /// `reboot`: what to do when a baseline or fix needs a reboot.
    public var rebootPolicy = RebootPolicy.request
    /// `reboot_window`: when `auto` may reboot; nil means at any time.
    public var rebootWindow: MaintenanceWindow? = nil
    /// `reboot_required_file`: the Debian reboot flag file; the release ids go to the `.pkgs` file beside it.
    public var rebootRequiredFile = "/run/reboot-required"
    /// `metrics_file`: a node-exporter textfile the host's state is written to after each cycle; nil for none.
    public var metricsFile: String? = nil
    /// `exclude_executables`: fnmatch(3) globs on a process's executable path; matching processes are never patched.
    public var excludeExecutables: [String] = []
    /// `exclude_units`: systemd unit names (read from /proc/PID/cgroup) whose processes are never patched.
    public var excludeUnits: [String] = []
    /// `allow_writable_channel`: accept a channel directory writable by group or others.
    public var allowWritableChannel = false
    /// `strict_stack_check`: refuse to patch while any thread's stack holds a return address into a patched function.
    public var strictStackCheck = false
    /// `exec_gate`: hold a new process that execs or loads a targeted file until it is patched, so
    /// it runs the fix from its first call (fanotify permission events; off: patched soon after it starts).
    public var execGate = true
    /// `health_window`: a patched process dying of a fatal signal within this many seconds reverts and quarantines the hotpatch.
    public var healthWindowSeconds = 60
    /// `kernel_transition_timeout`: how long a kernel live patch's transition may take before it
    /// counts as stalled (then the blocking tasks are signalled and it is waited for once more,
    /// then reverted), in seconds.
    public var kernelTransitionTimeoutSeconds = 60
    /// `deadline`: how long `--once` retries busy processes before giving up, in seconds.
    public var onceDeadlineSeconds = 30

    /// The verified copies of channel files.
    public var storeDirectory: String { stateDirectory + "/store" }
    /// The control socket.
    public var socketPath: String { runtimeDirectory + "/control.sock" }

    /// The embedded defaults.
    public init() {}

    /// Reads and parses the configuration at `path`. A missing file means the embedded defaults when
    /// `path` is the default path or `mustExist` is false (no `--config` given); otherwise it is refused.
    public static func load(path: String, mustExist: Bool) throws -> AgentConfiguration {
        let bytes: [UInt8]?
        do {
            bytes = try FileSystem.readIfPresent(path, limit: 1 << 20)
        } catch {
            throw AgentCoreError.configuration(path: path, line: nil, reason: "cannot be read: \(error.reasonText)")
        }
        guard let bytes else {
            if path == defaultPath || !mustExist { return AgentConfiguration() }
            throw AgentCoreError.configuration(path: path, line: nil, reason: "no such file")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw AgentCoreError.configuration(path: path, line: nil, reason: "not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// Parses configuration text; `path` only names it in errors. Unknown keys, wrong types and bad
    /// values are refused with their line and the reason, the first in the file first.
    public static func parse(_ text: String, path: String) throws -> AgentConfiguration {
        let table: TOMLTable
        if let line = ConfigurationText.lineOfNUL(in: text) {
            // TOMLKit hands toml++ a C string: everything after a NUL would be silently ignored.
            throw AgentCoreError.configuration(path: path, line: line, reason: "contains a NUL byte: not a text file")
        }
        if let line = ConfigurationText.lineOfHeaderWithoutKey(in: text) {
            throw AgentCoreError.configuration(path: path, line: line, reason: "a table header must name a table, e.g. [name] or [[name]]")
        }
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw AgentCoreError.configuration(path: path, line: error.source.begin.line, reason: error.description)
        }
        // TOMLKit gives no position per key, so each key's line is found in the text; keys are
        // checked in file order so the first mistake is the one reported.
        let keys = table.keys.map { (name: $0, line: ConfigurationText.line(ofKey: $0, in: text)) }
            .sorted { ($0.line ?? .max, $0.name) < ($1.line ?? .max, $1.name) }
        var configuration = AgentConfiguration()
        for (name, line) in keys {
            guard let key = ConfigurationKey(rawValue: name) else {
                var reason = "unknown key \"\(name)\""
                if let suggestion = ConfigurationText.suggestion(for: name) { reason += " (did you mean \"\(suggestion)\"?)" }
                throw AgentCoreError.configuration(path: path, line: line, reason: reason)
            }
            do throws(ConfigurationReason) {
                try configuration.set(key, to: try ConfigurationValue(table[name]!))
            } catch {
                throw AgentCoreError.configuration(path: path, line: line, reason: error.text)
            }
        }
        return configuration
    }

    /// Overrides `key` with a command-line flag's values: scalar keys take exactly one value, list keys
    /// take every value given (replacing the file's list), booleans take `true` or `false`.
    /// Errors name the flag.
    public mutating func override(_ key: ConfigurationKey, with values: [String]) throws {
        do {
            if key.isList {
                try set(key, to: .strings(values))
            } else {
                guard values.count == 1 else {
                    throw ConfigurationReason("takes one value, \(values.count) given")
                }
                if key.isBoolean {
                    switch values[0] {
                    case "true": try set(key, to: .boolean(true))
                    case "false": try set(key, to: .boolean(false))
                    default: throw ConfigurationReason("must be true or false, not \"\(values[0])\"")
                    }
                } else {
                    try set(key, to: .string(values[0]))
                }
            }
        } catch let reason as ConfigurationReason {
            throw AgentCoreError.configuration(path: key.flag, line: nil, reason: reason.text)
        }
    }

    /// This configuration if every value is acceptable (absolute paths, durations in range, a socket
    /// path short enough for AF_UNIX, well-formed exclusions); for values set in code or by flags.
    public func validated() throws -> AgentConfiguration {
        var copy = AgentConfiguration()
        do throws(ConfigurationReason) {
            for key in ConfigurationKey.allCases { try copy.set(key, to: value(of: key)) }
        } catch {
            throw AgentCoreError.configuration(path: "configuration", line: nil, reason: error.text)
        }
        return self
    }

    /// This running configuration after a reload to `new`: keys that apply on reload take their
    /// new values, the others keep the running ones. `refused` lists, in key order, each of the
    /// others whose value `new` changes: they need a restart.
    public func reloaded(to new: AgentConfiguration) -> (configuration: AgentConfiguration, refused: [ConfigurationKey]) {
        var result = new
        var refused: [ConfigurationKey] = []
        for key in ConfigurationKey.allCases where !key.appliesOnReload && value(of: key) != new.value(of: key) {
            refused.append(key)
            // The running value was accepted when it was set: setting it again cannot fail.
            try? result.set(key, to: value(of: key))
        }
        return (result, refused)
    }

    /// The warning a reload logs for `refused` keys (see `reloaded(to:)`), or nil when there are none.
    public func reloadRefusal(_ refused: [ConfigurationKey], new: AgentConfiguration) -> String? {
        guard !refused.isEmpty else { return nil }
        let changes = refused.map { "\($0.rawValue) (\(value(of: $0).text) → \(new.value(of: $0).text))" }
        return "Not applying \(changes.joined(separator: ", ")) on reload: \(refused.count == 1 ? "it cannot" : "they cannot") change while the agent runs; "
            + "restart it to apply (systemctl restart hotpatch-agent); the rest of the configuration is reloaded"
    }

    /// The value of `key` in the form parsing accepts (used to re-check values set in code).
    private func value(of key: ConfigurationKey) -> ConfigurationValue {
        switch key {
        case .channel: return .string(channelDirectory)
        case .trustedKeys: return .string(trustedKeysDirectory)
        case .stateDir: return .string(stateDirectory)
        case .runtimeDir: return .string(runtimeDirectory)
        case .pollInterval: return .integer(pollIntervalSeconds)
        case .reboot: return .string(rebootPolicy.rawValue)
        case .rebootWindow: return .string(rebootWindow?.description ?? "")
        case .rebootRequiredFile: return .string(rebootRequiredFile)
        case .metricsFile: return .string(metricsFile ?? "")
        case .excludeExecutables: return .strings(excludeExecutables)
        case .excludeUnits: return .strings(excludeUnits)
        case .allowWritableChannel: return .boolean(allowWritableChannel)
        case .strictStackCheck: return .boolean(strictStackCheck)
        case .execGate: return .boolean(execGate)
        case .healthWindow: return .integer(healthWindowSeconds)
        case .deadline: return .integer(onceDeadlineSeconds)
        case .kernelTransitionTimeout: return .integer(kernelTransitionTimeoutSeconds)
        }
    }

    /// Sets `key` from a parsed value, refusing a wrong type or a bad value with the reason.
    private mutating func set(_ key: ConfigurationKey, to value: ConfigurationValue) throws(ConfigurationReason) {
        let name = key.rawValue
        switch key {
        case .channel: channelDirectory = try value.absolutePath(name)
        case .trustedKeys: trustedKeysDirectory = try value.absolutePath(name)
        case .stateDir: stateDirectory = try value.absolutePath(name)
        case .runtimeDir:
            let directory = try value.absolutePath(name)
            // sun_path holds 108 bytes with the terminating NUL.
            let socket = directory + "/control.sock"
            guard socket.utf8.count <= 107 else {
                throw ConfigurationReason("\(name) is too long: the control socket path \(socket) must fit in 107 bytes")
            }
            runtimeDirectory = directory
        case .pollInterval: pollIntervalSeconds = try value.duration(name)
        case .reboot:
            let text = try value.text(name)
            guard let policy = RebootPolicy(rawValue: text) else {
                throw ConfigurationReason("\(name) must be one of never, request, auto, not \"\(text)\"")
            }
            rebootPolicy = policy
        case .rebootWindow:
            let text = try value.text(name)
            if text.isEmpty { rebootWindow = nil; return }
            guard let window = MaintenanceWindow.parse(text) else {
                throw ConfigurationReason("\(name) \"\(text)\" is not a window such as \"02:00-04:00\", \"Sun 02:00-04:00\" or \"Mon,Thu 23:00-01:00\"")
            }
            rebootWindow = window
        case .rebootRequiredFile: rebootRequiredFile = try value.absolutePath(name)
        case .metricsFile:
            if case .string("") = value { metricsFile = nil; return }
            metricsFile = try value.absolutePath(name)
        case .excludeExecutables:
            let patterns = try value.list(name)
            for pattern in patterns where !(pattern.hasPrefix("/") || pattern.hasPrefix("*")) {
                throw ConfigurationReason("\(name) pattern \"\(pattern)\" never matches: patterns match the absolute executable path, so start with \"/\" or \"*\" (e.g. \"*/\(pattern)\")")
            }
            excludeExecutables = patterns
        case .excludeUnits:
            let units = try value.list(name)
            for unit in units where unit.contains("/") || unit.contains(where: \.isWhitespace) || !unit.contains(".") {
                throw ConfigurationReason("\(name) entry \"\(unit)\" is not a systemd unit name such as \"ssh.service\"")
            }
            excludeUnits = units
        case .allowWritableChannel: allowWritableChannel = try value.boolean(name)
        case .strictStackCheck: strictStackCheck = try value.boolean(name)
        case .execGate: execGate = try value.boolean(name)
        case .healthWindow: healthWindowSeconds = try value.duration(name)
        case .deadline: onceDeadlineSeconds = try value.duration(name)
        case .kernelTransitionTimeout:
            let seconds = try value.duration(name)
            // An apply may wait three times this, inside one cycle, which the loop allows 15 minutes.
            guard seconds <= 300 else { throw ConfigurationReason("\(name) must be at most 5m (an apply may wait three times it), not \(seconds) s") }
            kernelTransitionTimeoutSeconds = seconds
        }
    }
}

/// Why a value is refused; becomes `AgentCoreError.configuration` once the line or flag is known.
struct ConfigurationReason: Error {
    let text: String
    init(_ text: String) { self.text = text }
}

/// A configuration value as TOML or a flag gives it, before the key's own checks.
enum ConfigurationValue: Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case strings([String])
    /// A TOML type no key takes (float, date, table, array of non-strings), by its name.
    case other(String)

    init(_ value: TOMLValueConvertible) throws(ConfigurationReason) {
        switch value.type {
        case .string: self = .string(value.string!)
        case .int: self = .integer(value.int!)
        case .bool: self = .boolean(value.bool!)
        case .array:
            var items: [String] = []
            for item in value.array! {
                guard item.type == .string, let text = item.string else {
                    self = .other("an array of \(item.type.description) values")
                    return
                }
                items.append(text)
            }
            self = .strings(items)
        default: self = .other("a \(value.type.description)")
        }
    }

    /// The value as a person reads it in a log line.
    var text: String {
        switch self {
        case let .string(text): return text.isEmpty ? "\"\"" : text
        case let .integer(number): return "\(number)"
        case let .boolean(value): return "\(value)"
        case let .strings(items): return "[" + items.joined(separator: ", ") + "]"
        case let .other(name): return name
        }
    }

    var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .boolean: return "a boolean"
        case .strings: return "an array of strings"
        case let .other(name): return name
        }
    }

    func text(_ key: String) throws(ConfigurationReason) -> String {
        guard case let .string(text) = self else { throw ConfigurationReason("\(key) must be a string, not \(typeName)") }
        guard !text.contains("\0") else { throw ConfigurationReason("\(key) must not contain a NUL character") }
        return text
    }

    func absolutePath(_ key: String) throws(ConfigurationReason) -> String {
        let path = try text(key)
        guard path.hasPrefix("/") else { throw ConfigurationReason("\(key) must be an absolute path, not \"\(path)\"") }
        // A trailing slash would give paths such as "/run/x//control.sock"; "/" itself stays.
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return String(trimmed)
    }

    /// A duration in seconds, from a TOML integer or a text such as "90s"; both within
    /// `DurationText`'s range (1 s to 3650 days), so no consumer of the value can overflow.
    func duration(_ key: String) throws(ConfigurationReason) -> Int {
        let form = "a duration such as \"90s\", \"5m\", \"2h\", \"7d\" or a number of seconds (\(DurationText.rangeText))"
        let outOfRange = { (given: String) in ConfigurationReason("\(key) \(given) is out of range (\(DurationText.rangeText))") }
        switch self {
        case let .integer(seconds):
            do { return try DurationText.checked(seconds) } catch { throw outOfRange("\(seconds)") }
        case let .string(text):
            do { return try DurationText.parse(text) } catch {
                switch error {
                case .outOfRange: throw outOfRange(text)
                case .notADuration: throw ConfigurationReason("\(key) \"\(text)\" is not \(form)")
                }
            }
        default:
            throw ConfigurationReason("\(key) must be \(form), not \(typeName)")
        }
    }

    func boolean(_ key: String) throws(ConfigurationReason) -> Bool {
        guard case let .boolean(value) = self else { throw ConfigurationReason("\(key) must be true or false, not \(typeName)") }
        return value
    }

    func list(_ key: String) throws(ConfigurationReason) -> [String] {
        guard case let .strings(items) = self else { throw ConfigurationReason("\(key) must be an array of strings, not \(typeName)") }
        if items.contains(where: \.isEmpty) { throw ConfigurationReason("\(key) must not contain an empty string") }
        return items
    }
}

/// Finding things in the configuration text that TOMLKit does not report.
enum ConfigurationText {
    /// The 1-based line where top-level key `key` is defined (`key =`, `"key" =`, `key.sub =` or a
    /// `[key]`/`[[key]]` header), skipping comments; nil if not found.
    static func line(ofKey key: String, in text: String) -> Int? {
        var number = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var line = rawLine.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("[") {
                line = line.drop { $0 == "[" || $0 == " " || $0 == "\t" }
            }
            for spelling in [key, "\"\(key)\"", "'\(key)'"] where line.hasPrefix(spelling) {
                let rest = line.dropFirst(spelling.count).drop { $0 == " " || $0 == "\t" }
                if let next = rest.first, next == "=" || next == "." || next == "]" { return number }
            }
        }
        return nil
    }

    /// The known key closest to a misspelt `name`, if one is close enough to be a likely typo.
    static func suggestion(for name: String) -> String? {
        let candidates = ConfigurationKey.allCases.map(\.rawValue)
        // People often write the flag's spelling ("poll-interval") for the key.
        let typed = Array(name.lowercased().map { character in character == "-" ? "_" : character })
        let scored = candidates.map { candidate in (candidate, distance(typed, Array(candidate))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, best.0.count / 3) else { return nil }
        return best.0
    }

    /// Levenshtein edit distance.
    private static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

extension AgentCoreError {
    /// The reason part of the error's sentence, for wrapping in another message.
    var reasonText: String {
        if case let .system(error) = self { return SystemError.errnoText(error.errno) }
        return description
    }
}
