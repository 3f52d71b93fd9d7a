@testable import AgentCore
import Foundation
import Testing

/// What Fuzz/Configuration found, each kept as a regression test.
@Suite struct ConfigurationFuzzFindingsTests {
    /// Headers after which toml++ 3.4.0 asserts (and, without NDEBUG, aborts the agent).
    static let headersWithoutKey = ["[.5\n", "[[=\n", "[[[1]]]\n", "[ .a]\n", "[\n", "[]\n",
                                    "poll_interval = \"5m\"\n# a comment\n[[\t]]\n"]

    @Test(arguments: headersWithoutKey)
    func parse_whenATableHeaderHasNoKey_refusesItNamingTheLine(text: String) {
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).count - 1
        #expect(throws: AgentCoreError.configuration(path: "agent.toml", line: line,
                                                     reason: "a table header must name a table, e.g. [name] or [[name]]")) {
            try AgentConfiguration.parse(text, path: "agent.toml")
        }
    }

    @Test func parse_whenTheTextHoldsANULByte_refusesItInsteadOfIgnoringTheRest() {
        // TOMLKit hands toml++ a C string, which used to end at the NUL: `reboot` was silently dropped.
        let text = "poll_interval = 60\n\0\nreboot = \"auto\"\n"

        #expect(throws: AgentCoreError.configuration(path: "agent.toml", line: 2, reason: "contains a NUL byte: not a text file")) {
            try AgentConfiguration.parse(text, path: "agent.toml")
        }
    }

    @Test func headerScan_ignoresBracketsInsideValuesStringsAndComments() {
        let text = """
            exclude_executables = [
              "[.x",
              '[=y',
            ]
            exclude_units = [ ]
            # [.comment
            reboot_window = \"\"\"
            [.inside a multi-line string
            \"\"\"
            metrics_file = "/a\\"[." # [.
            nested = [[1, 2], [.5]]
            inline = { a = [ [ ] ] }
            ["quoted"]
            [[ 'literal' ]]
            [bare-key_0]
            """
        #expect(ConfigurationText.lineOfHeaderWithoutKey(in: text) == nil)
        #expect(ConfigurationText.lineOfHeaderWithoutKey(in: text + "\n[.5") == 16)
    }

    @Test func agent_whenItsConfigurationHasAHeaderWithoutKey_exits78WithTheLineInsteadOfAborting() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let configuration = try directory.write("agent.toml", "poll_interval = \"5m\"\n[.5\n")

        let run = try await Program.run(Products.hotpatchAgent, ["--config", configuration, "--once", "--state-dir", directory.path + "/state"],
                                        environment: ["SWIFT_BACKTRACE": "enable=no"])

        // Before the fix: toml++'s assertion aborted the agent (SIGABRT, 134 from a shell).
        #expect(run.status == 78, "\(run.stderr)")
        #expect(run.stderr == "hotpatch-agent: \(configuration):2: a table header must name a table, e.g. [name] or [[name]]\n")
    }
}
