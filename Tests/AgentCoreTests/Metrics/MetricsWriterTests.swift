import AgentCore
import AgentProtocol
import Foundation
import Testing

private func sampleStatus() -> AgentStatus {
    AgentStatus(
        verdict: .rebootRequired,
        reasons: [.init(verdict: .rebootRequired, message: "fix-openssl-3 installed")],
        baseline: .init(active: "base \"2025\\q1\"\nx", pending: ["fix-openssl-3"]),
        hotpatch: .init(id: "hp-base-3", level: 3, cves: ["CVE-2025-0001"]),
        processes: .init(patched: 12, pending: 1, unpatchable: 2, vulnerable: 1),
        reboot: .init(required: true, reasons: ["fix-openssl-3"], policy: "request"),
        channel: .init(version: 42, lastCheck: "2025-03-01T02:00:00Z", error: nil, path: "/var/lib/hotpatch-agent/channel"),
        enrolled: true, processWatch: "netlink", lastPauseUsec: 180, agentVersion: "1.0")
}

@Test func render_writesEverySeriesWithHelpTypeAndEscapedLabels() {
    let text = MetricsWriter.render(sampleStatus(), now: Date(timeIntervalSince1970: 1_740_794_460))
    #expect(text == """
        # HELP hotpatch_verdict The host's verdict: 1 for the current one, 0 for the others.
        # TYPE hotpatch_verdict gauge
        hotpatch_verdict{verdict="up-to-date"} 0
        hotpatch_verdict{verdict="hotpatch-pending"} 0
        hotpatch_verdict{verdict="reboot-required"} 1
        hotpatch_verdict{verdict="exposed"} 0
        hotpatch_verdict{verdict="unenrolled"} 0
        # HELP hotpatch_baseline_info The active baseline (always 1; the baseline is the label).
        # TYPE hotpatch_baseline_info gauge
        hotpatch_baseline_info{baseline="base \\"2025\\\\q1\\"\\nx"} 1
        # HELP hotpatch_level The hotpatch level in force for the active baseline (0 for none).
        # TYPE hotpatch_level gauge
        hotpatch_level 3
        # HELP hotpatch_processes Processes mapping a targeted object, by state.
        # TYPE hotpatch_processes gauge
        hotpatch_processes{state="patched"} 12
        hotpatch_processes{state="pending"} 1
        hotpatch_processes{state="unpatchable"} 2
        # HELP hotpatch_processes_vulnerable Processes that map an object the hotpatch in force fixes but could not be patched: still running vulnerable code.
        # TYPE hotpatch_processes_vulnerable gauge
        hotpatch_processes_vulnerable 1
        # HELP hotpatch_kernel_level The level of the kernel live patch in force in the running kernel (0 for none).
        # TYPE hotpatch_kernel_level gauge
        # HELP hotpatch_kernel_in_transition 1 while a kernel live patch's transition is under way.
        # TYPE hotpatch_kernel_in_transition gauge
        # HELP hotpatch_kernel_state The kernel live patch's state: 1 for the current one, 0 for the others.
        # TYPE hotpatch_kernel_state gauge
        # HELP hotpatch_reboot_required 1 when a baseline or fix waits for a reboot.
        # TYPE hotpatch_reboot_required gauge
        hotpatch_reboot_required 1
        # HELP hotpatch_last_check_timestamp_seconds When the channel was last checked (Unix time).
        # TYPE hotpatch_last_check_timestamp_seconds gauge
        hotpatch_last_check_timestamp_seconds 1740794400
        # HELP hotpatch_last_pause_microseconds The pause of the last patch of a process.
        # TYPE hotpatch_last_pause_microseconds gauge
        hotpatch_last_pause_microseconds 180
        # HELP hotpatch_channel_version The channel index version last accepted.
        # TYPE hotpatch_channel_version gauge
        hotpatch_channel_version 42
        # HELP hotpatch_enrolled 1 when the host takes hotpatches.
        # TYPE hotpatch_enrolled gauge
        hotpatch_enrolled 1
        # HELP hotpatch_metrics_timestamp_seconds When the agent wrote this file (Unix time).
        # TYPE hotpatch_metrics_timestamp_seconds gauge
        hotpatch_metrics_timestamp_seconds 1740794460

        """)
}

@Test func render_whenNothingKnownYet_omitsSeriesWithoutAValue() {
    var status = sampleStatus()
    status.baseline.active = nil
    status.hotpatch = nil
    status.channel = .init(lastCheck: "2025-03-01T02:00:00.250Z")
    status.lastPauseUsec = nil
    let text = MetricsWriter.render(status, now: Date(timeIntervalSince1970: 0))
    #expect(!text.contains("hotpatch_baseline_info{"))
    #expect(text.contains("\nhotpatch_level 0\n"))
    #expect(text.contains("\nhotpatch_last_check_timestamp_seconds 1740794400\n"))
    #expect(!text.contains("\nhotpatch_channel_version "))
    #expect(!text.contains("\nhotpatch_last_pause_microseconds "))
}

@Test func write_replacesTheFileAtomicallyLeavingNoTemporaryFile() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let path = directory.path + "/hotpatch.prom"
    try directory.write("hotpatch.prom", "old\n")
    try MetricsWriter.write(sampleStatus(), to: path, now: Date(timeIntervalSince1970: 0))
    #expect(try directory.read("hotpatch.prom") == MetricsWriter.render(sampleStatus(), now: Date(timeIntervalSince1970: 0)))
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["hotpatch.prom"])
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    #expect((attributes[.posixPermissions] as? Int) == 0o644)
}

@Test func write_whenDirectoryMissing_failsNamingThePath() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let path = directory.path + "/missing/hotpatch.prom"
    do {
        try MetricsWriter.write(sampleStatus(), to: path, now: Date())
        Issue.record("wrote into a missing directory")
    } catch let error as AgentCoreError {
        #expect(error.description.hasPrefix("open failed for \(directory.path)/missing/.hotpatch.prom.tmp-"))
        #expect(error.description.hasSuffix(": ENOENT (No such file or directory)"))
    }
}
