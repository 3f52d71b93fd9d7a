import AgentCore
import Foundation
import Testing

/// The error's sentence, or nil when `body` does not throw an `AgentCoreError`.
private func refusal(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as AgentCoreError {
        return error.description
    } catch {
        return "unexpected \(error)"
    }
}

@Test func load_whenFileMissingAndNotRequired_givesEmbeddedDefaults() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let configuration = try AgentConfiguration.load(path: directory.path + "/agent.toml", mustExist: false)
    #expect(configuration == AgentConfiguration())
}

@Test func load_whenExplicitFileMissing_refusesNamingThePath() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let path = directory.path + "/agent.toml"
    #expect(refusal { _ = try AgentConfiguration.load(path: path, mustExist: true) } == "\(path): no such file")
}

@Test func load_whenUnknownKey_refusesNamingTheLineAndKey() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let path = try directory.write("agent.toml", "# comment\nchannel = \"/srv/channel\"\n\n\n\n\npol_interval = \"5m\"\n")
    #expect(refusal { _ = try AgentConfiguration.load(path: path, mustExist: true) }
        == "\(path):7: unknown key \"pol_interval\" (did you mean \"poll_interval\"?)")
}

@Test func parse_whenKeyWrittenWithFlagSpelling_suggestsTheKey() {
    #expect(refusal { _ = try AgentConfiguration.parse("trusted-keys = \"/k\"\n", path: "a.toml") }
        == "a.toml:1: unknown key \"trusted-keys\" (did you mean \"trusted_keys\"?)")
}

@Test func parse_whenUnknownKeyIsNothingLikeAKnownOne_offersNoSuggestion() {
    #expect(refusal { _ = try AgentConfiguration.parse("\n[frobnicator]\nx = 1\n", path: "a.toml") }
        == "a.toml:2: unknown key \"frobnicator\"")
}

@Test func parse_whenSeveralMistakes_reportsTheFirstInTheFile() {
    let text = "zzz_last = 1\n"  // alphabetical order would put "aaa" first; file order puts zzz first
        + "aaa = 2\n"
    #expect(refusal { _ = try AgentConfiguration.parse(text, path: "a.toml") } == "a.toml:1: unknown key \"zzz_last\"")
}

@Test func parse_whenSyntaxError_refusesWithTOMLsLine() {
    let message = refusal { _ = try AgentConfiguration.parse("channel = \"/a\"\nreboot = \n", path: "a.toml") }
    #expect(message?.hasPrefix("a.toml:2: ") == true)
}

@Test func parse_whenWrongType_refusesNamingLineKeyAndType() {
    #expect(refusal { _ = try AgentConfiguration.parse("\npoll_interval = true\n", path: "a.toml") }
        == "a.toml:2: poll_interval must be a duration such as \"90s\", \"5m\", \"2h\", \"7d\" or a number of seconds (1s to 3650d), not a boolean")
    #expect(refusal { _ = try AgentConfiguration.parse("strict_stack_check = \"yes\"\n", path: "a.toml") }
        == "a.toml:1: strict_stack_check must be true or false, not a string")
    #expect(refusal { _ = try AgentConfiguration.parse("exclude_units = [1, 2]\n", path: "a.toml") }
        == "a.toml:1: exclude_units must be an array of strings, not an array of integer values")
    #expect(refusal { _ = try AgentConfiguration.parse("channel = 1.5\n", path: "a.toml") }
        == "a.toml:1: channel must be a string, not a floating-point number")
}

@Test func parse_whenBadValues_refusesWithTheReason() {
    let cases: [(String, String)] = [
        ("channel = \"relative/dir\"", "a.toml:1: channel must be an absolute path, not \"relative/dir\""),
        ("reboot = \"sometimes\"", "a.toml:1: reboot must be one of never, request, auto, not \"sometimes\""),
        ("poll_interval = \"5x\"", "a.toml:1: poll_interval \"5x\" is not a duration such as \"90s\", \"5m\", \"2h\", \"7d\" or a number of seconds (1s to 3650d)"),
        ("deadline = 0", "a.toml:1: deadline 0 is out of range (1s to 3650d)"),
        ("reboot_window = \"Someday 02:00-04:00\"",
         "a.toml:1: reboot_window \"Someday 02:00-04:00\" is not a window such as \"02:00-04:00\", \"Sun 02:00-04:00\" or \"Mon,Thu 23:00-01:00\""),
        ("exclude_executables = [\"bash\"]",
         "a.toml:1: exclude_executables pattern \"bash\" never matches: patterns match the absolute executable path, so start with \"/\" or \"*\" (e.g. \"*/bash\")"),
        ("exclude_units = [\"ssh\"]", "a.toml:1: exclude_units entry \"ssh\" is not a systemd unit name such as \"ssh.service\""),
    ]
    for (text, expected) in cases {
        #expect(refusal { _ = try AgentConfiguration.parse(text + "\n", path: "a.toml") } == expected)
    }
}

@Test func parse_whenRuntimeDirectoryTooLongForASocket_refuses() {
    let long = "/" + String(repeating: "r", count: 100)
    let message = refusal { _ = try AgentConfiguration.parse("runtime_dir = \"\(long)\"\n", path: "a.toml") }
    #expect(message?.hasPrefix("a.toml:1: runtime_dir is too long") == true)
}

@Test func parse_whenEveryKeySet_readsEachValue() throws {
    let text = """
        channel = "/srv/channel/"
        trusted_keys = "/srv/keys"
        state_dir = "/srv/state"
        runtime_dir = "/run/hp"
        poll_interval = "2h"
        reboot = "auto"
        reboot_window = "Mon,Thu 23:00-01:00"
        reboot_required_file = "/tmp/reboot-required"
        metrics_file = "/var/lib/prometheus/node-exporter/hotpatch.prom"
        exclude_executables = ["/usr/sbin/sshd", "*/java"]
        exclude_units = ["postgresql@16-main.service"]
        allow_writable_channel = true
        strict_stack_check = true
        health_window = 90
        deadline = "1m"
        """
    let configuration = try AgentConfiguration.parse(text, path: "a.toml")
    var expected = AgentConfiguration()
    expected.channelDirectory = "/srv/channel"
    expected.trustedKeysDirectory = "/srv/keys"
    expected.stateDirectory = "/srv/state"
    expected.runtimeDirectory = "/run/hp"
    expected.pollIntervalSeconds = 7200
    expected.rebootPolicy = .auto
    expected.rebootWindow = MaintenanceWindow.parse("Mon,Thu 23:00-01:00")
    expected.rebootRequiredFile = "/tmp/reboot-required"
    expected.metricsFile = "/var/lib/prometheus/node-exporter/hotpatch.prom"
    expected.excludeExecutables = ["/usr/sbin/sshd", "*/java"]
    expected.excludeUnits = ["postgresql@16-main.service"]
    expected.allowWritableChannel = true
    expected.strictStackCheck = true
    expected.healthWindowSeconds = 90
    expected.onceDeadlineSeconds = 60
    #expect(configuration == expected)
    #expect(configuration.socketPath == "/run/hp/control.sock")
    #expect(configuration.storeDirectory == "/srv/state/store")
}

@Test func shippedConfiguration_parsesToExactlyTheDefaults() throws {
    let text = try String(contentsOfFile: repositoryRoot + "/systemd/agent.toml", encoding: .utf8)
    #expect(try AgentConfiguration.parse(text, path: "agent.toml") == AgentConfiguration())
}

@Test func shippedConfiguration_withEveryKeyUncommented_stillParsesToTheDefaults() throws {
    let text = try String(contentsOfFile: repositoryRoot + "/systemd/agent.toml", encoding: .utf8)
    var uncommented = 0
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
        // Commented keys are "#key = …"; explanations are "# …".
        guard line.hasPrefix("#"), let second = line.dropFirst().first, second.isLetter else { return line }
        uncommented += 1
        return line.dropFirst()
    }
    #expect(uncommented == ConfigurationKey.allCases.count)
    let configuration = try AgentConfiguration.parse(lines.joined(separator: "\n"), path: "agent.toml")
    #expect(configuration == AgentConfiguration())
}

@Test func documentation_namesEveryKeyAndFlag() throws {
    let documentation = try String(contentsOfFile: repositoryRoot + "/docs/CONFIGURATION.md", encoding: .utf8)
    let shipped = try String(contentsOfFile: repositoryRoot + "/systemd/agent.toml", encoding: .utf8)
    for key in ConfigurationKey.allCases {
        #expect(documentation.contains("`\(key.rawValue)`"), "CONFIGURATION.md lacks \(key.rawValue)")
        #expect(documentation.contains("`\(key.flag)"), "CONFIGURATION.md lacks \(key.flag)")
        #expect(shipped.contains("#\(key.rawValue) = "), "agent.toml lacks \(key.rawValue)")
    }
}

@Test func override_whenFlagsGiven_replaceFileValues() throws {
    var configuration = try AgentConfiguration.parse("exclude_units = [\"a.service\"]\npoll_interval = 10\n", path: "a.toml")
    try configuration.override(.pollInterval, with: ["5m"])
    try configuration.override(.excludeUnits, with: ["b.service", "c.scope"])
    try configuration.override(.strictStackCheck, with: ["true"])
    try configuration.override(.metricsFile, with: [""])
    try configuration.override(.rebootWindow, with: ["Sun 02:00-04:00"])
    #expect(configuration.pollIntervalSeconds == 300)
    #expect(configuration.excludeUnits == ["b.service", "c.scope"])
    #expect(configuration.strictStackCheck)
    #expect(configuration.metricsFile == nil)
    #expect(configuration.rebootWindow?.description == "Sun 02:00-04:00")
}

@Test func override_whenFlagValueBad_refusesNamingTheFlag() {
    var configuration = AgentConfiguration()
    #expect(refusal { try configuration.override(.reboot, with: ["always"]) }
        == "--reboot-policy: reboot must be one of never, request, auto, not \"always\"")
    #expect(refusal { try configuration.override(.allowWritableChannel, with: ["yes"]) }
        == "--allow-writable-channel: must be true or false, not \"yes\"")
    #expect(refusal { try configuration.override(.channel, with: ["/a", "/b"]) } == "--channel: takes one value, 2 given")
}

@Test func validated_whenValueSetInCodeIsBad_refuses() {
    var configuration = AgentConfiguration()
    #expect((try? configuration.validated()) == configuration)
    configuration.stateDirectory = "var/lib"
    #expect(refusal { _ = try configuration.validated() }
        == "configuration: state_dir must be an absolute path, not \"var/lib\"")
    configuration = AgentConfiguration()
    configuration.pollIntervalSeconds = 0
    #expect(refusal { _ = try configuration.validated() } == "configuration: poll_interval 0 is out of range (1s to 3650d)")
}

// MARK: Duration bounds (issue 14, finding 7)

@Test func durations_fromOneSecondUp_areAcceptedInEveryForm() throws {
    for (text, seconds) in [("1", 1), ("1s", 1), ("90m", 5400), ("24h", 86_400), ("3650d", 315_360_000)] {
        var configuration = AgentConfiguration()
        try configuration.override(.pollInterval, with: [text])
        #expect(configuration.pollIntervalSeconds == seconds, "\(text)")
    }
    let parsed = try AgentConfiguration.parse("poll_interval = 1\nhealth_window = \"24h\"\ndeadline = \"90m\"\n", path: "a.toml")
    #expect(parsed.pollIntervalSeconds == 1 && parsed.healthWindowSeconds == 86_400 && parsed.onceDeadlineSeconds == 5400)
}

@Test func durations_zeroNegativeAndUnrepresentable_areRefusedAsOutOfRange_forEveryDurationKey() {
    for key in [ConfigurationKey.pollInterval, .healthWindow, .deadline] {
        for text in ["0", "0s", "-1", "-1s", "9223372036854775807", "9223372036854775807s", "99999999999999999999999", "3651d"] {
            var configuration = AgentConfiguration()
            #expect(refusal { try configuration.override(key, with: [text]) }
                == "\(key.flag): \(key.rawValue) \(text) is out of range (1s to 3650d)")
        }
        for value in ["0", "-1", "9223372036854775807", "315360001"] {
            #expect(refusal { _ = try AgentConfiguration.parse("\(key.rawValue) = \(value)\n", path: "a.toml") }
                == "a.toml:1: \(key.rawValue) \(value) is out of range (1s to 3650d)")
        }
    }
}

@Test func durations_thatAreNotDurations_areRefusedWithTheForm() {
    var configuration = AgentConfiguration()
    for text in ["1e30", "", "5 m", "1w", "s", "0x10"] {
        #expect(refusal { try configuration.override(.pollInterval, with: [text]) }
            == "--poll-interval: poll_interval \"\(text)\" is not a duration such as \"90s\", \"5m\", \"2h\", \"7d\" or a number of seconds (1s to 3650d)")
    }
    #expect(refusal { _ = try AgentConfiguration.parse("poll_interval = 1e30\n", path: "a.toml") }
        == "a.toml:1: poll_interval must be a duration such as \"90s\", \"5m\", \"2h\", \"7d\" or a number of seconds (1s to 3650d), not a floating-point number")
}
