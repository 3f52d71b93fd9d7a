import AgentProtocol
import Foundation
import Glibc
import HotpatchFixtures
import XCTest

/// The commit point of a publication, against the real `hotpatch-agent`: the agent's channel is a
/// mirror of the publisher's, filled the way a sync tool fills it (release files, then
/// `index.json`, then `index.json.sig` last). An index whose signature has not landed yet changes
/// nothing and is no failure; the signature landing applies the release at once; a mismatch that
/// lasts is refused after the settle time, in the words of any other refusal. Needs root.
final class ChannelCommitPointAgentIntegrationTests: XCTestCase {
    private static let level2Output = "parse_length(100)=32 banner=1"

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace: run as root")
    }

    /// A host whose agent watches `mirror` (no poll within the test), where level 1 is in force on a victim.
    private func hostWithMirror(_ name: String) throws -> (host: AgentTestHost, mirror: String, victim: RunningProcess) {
        let host = try AgentTestHost(name: name)
        let mirror = host.root + "/mirror"
        try host.addHotpatch(level: 1)
        try host.publish()
        try syncReleaseFiles(host, to: mirror)
        try land(ChannelFileName.index, of: host, in: mirror)
        try land(ChannelFileName.signature, of: host, in: mirror)
        let victim = try host.startVictim()
        try host.startAgent(["--channel", mirror, "--poll-interval", "1h"])
        try victim.expectBehaviour(AgentTestHost.level1Output)
        try host.waitForStatus("level 1 in force") { $0.hotpatch?.level == 1 && $0.channel.version == 1 && host.listsAsPatched([victim]) }
        return (host, mirror, victim)
    }

    private enum ChannelFileName {
        static let index = "index.json"
        static let signature = "index.json.sig"
    }

    /// Copies every file of the publisher's channel but the index and its signature into `mirror`,
    /// each written beside its place and renamed in, as rsync does.
    private func syncReleaseFiles(_ host: AgentTestHost, to mirror: String) throws {
        let source = host.channel.channel
        try makeDirectory(mirror)
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: source))
        while let relative = enumerator.nextObject() as? String {
            if relative == ChannelFileName.index || relative == ChannelFileName.signature { continue }
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: source + "/" + relative, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                try makeDirectory(mirror + "/" + relative)
            } else {
                try copyByRename(source + "/" + relative, to: mirror + "/" + relative)
            }
        }
    }

    /// Lands one top-level file of the publisher's channel in `mirror` by rename.
    private func land(_ name: String, of host: AgentTestHost, in mirror: String) throws {
        try copyByRename(host.channel.channel + "/" + name, to: mirror + "/" + name)
    }

    private func makeDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, 0o755)
    }

    private func copyByRename(_ source: String, to destination: String) throws {
        let temporary = (destination as NSString).deletingLastPathComponent + "/.sync-" + (destination as NSString).lastPathComponent
        try Data(contentsOf: URL(fileURLWithPath: source)).write(to: URL(fileURLWithPath: temporary))
        chmod(temporary, 0o644)
        XCTAssertEqual(rename(temporary, destination), 0, "rename to \(destination): errno \(errno)")
    }

    /// Seconds until the agent's log has a line containing `text`.
    private func waitForLog(_ host: AgentTestHost, _ text: String, timeout: Double = 10) throws -> Double {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if !host.logLines(containing: text).isEmpty { return Date().timeIntervalSince(start) }
            usleep(2_000)
        }
        throw FixtureError.timeout("no log line with '\(text)'\n--- agent log ---\n\(host.logTail())")
    }

    private func incompleteReason(_ status: AgentStatus) -> AgentStatus.Reason? {
        status.reasons.first { $0.message.contains("channel publication incomplete since") }
    }

    func testIndexBeforeItsSignature_changesNothingAndIsNoFailure_thenTheSignatureAppliesTheReleaseAtOnce() throws {
        let (host, mirror, victim) = try hostWithMirror("commit-point")
        try host.addHotpatch(level: 2)
        try host.publish()
        try syncReleaseFiles(host, to: mirror)
        try land(ChannelFileName.index, of: host, in: mirror)  // The previous index's signature is still there.

        let waiting = try host.waitForStatus("waiting for the signature", timeout: 3) { self.incompleteReason($0) != nil }
        XCTAssertEqual(waiting.verdict, .upToDate, "\(waiting.reasons)")
        XCTAssertNil(waiting.channel.error, "a publication being written is no failure")
        XCTAssertEqual(waiting.channel.version, 1)
        XCTAssertEqual(waiting.hotpatch?.level, 1, "the last verified release stays in force")
        XCTAssertTrue(incompleteReason(waiting)?.message.contains("does not match these bytes") ?? false, "\(waiting.reasons)")

        // No signature at all, as between a sync tool's delete and its rename: still waiting.
        try FileManager.default.removeItem(atPath: mirror + "/" + ChannelFileName.signature)
        try host.waitForStatus("waiting for the missing signature", timeout: 3) {
            self.incompleteReason($0)?.message.contains("signature file is missing") ?? false
        }
        try victim.expectSteadyBehaviour(AgentTestHost.level1Output, seconds: 0.3)
        XCTAssertTrue(host.listsAsPatched([victim]), "nothing reverted: \(host.processes())")
        XCTAssertEqual(host.logLines(containing: "Failed to verify the channel"), [], "no error while the publication lands")

        try land(ChannelFileName.signature, of: host, in: mirror)
        let accepted = try waitForLog(host, "Accepted channel index version 2")
        print("signature landed → index version 2 accepted: \(Int(accepted * 1000)) ms")
        XCTAssertLessThan(accepted, 1, "the commit point is acted on at once\n\(host.logTail())")
        try victim.expectBehaviour(Self.level2Output, timeout: 10)
        let applied = try host.waitForStatus("level 2 in force") { $0.hotpatch?.level == 2 && $0.channel.version == 2 }
        XCTAssertEqual(applied.verdict, .upToDate, "\(applied.reasons)")
        XCTAssertNil(incompleteReason(applied))
        XCTAssertEqual(host.logLines(containing: "Failed to verify the channel"), [])
        XCTAssertEqual(host.stopAgent(), 0)
    }

    func testAnAdministratorsRevert_whileAPublicationLands_takesEffectAtOnce() throws {
        let (host, mirror, victim) = try hostWithMirror("commit-point-admin")
        try host.addHotpatch(level: 2)
        try host.publish()
        try syncReleaseFiles(host, to: mirror)
        try land(ChannelFileName.index, of: host, in: mirror)  // The signature never comes in this test.
        try host.waitForStatus("waiting for the signature", timeout: 3) { self.incompleteReason($0) != nil }

        let start = Date()
        let reverted = try host.agentctl(["revert", "hp1"])
        XCTAssertEqual(reverted.status, 0, reverted.output)
        try victim.expectBehaviour("parse_length(100)=100 banner=1", timeout: 10)
        let took = Date().timeIntervalSince(start)
        XCTAssertLessThan(took, 3, "the revert waited for the publication (settle time 5 s)\n\(host.logTail())")
        let history = try host.send(.history).history ?? []
        XCTAssertTrue(history.contains { $0.release == "hp1" && $0.event == "held" }, "\(history)")
        XCTAssertTrue(history.contains { $0.event == "reverted" }, "\(history)")
        XCTAssertEqual(host.stopAgent(), 0)
    }

    func testASignatureThatNeverMatches_isRefusedAfterTheSettleTime_likeAnyRefusal_andTheReleaseStays() throws {
        let (host, mirror, victim) = try hostWithMirror("commit-point-settle")
        try host.addHotpatch(level: 2)
        try host.publish()
        try syncReleaseFiles(host, to: mirror)
        try land(ChannelFileName.index, of: host, in: mirror)
        let start = Date()

        try host.waitForStatus("waiting for the signature", timeout: 3) { self.incompleteReason($0) != nil }
        let refused = try host.waitForStatus("refused after the settle time", timeout: 15) { $0.verdict == .exposed }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThan(elapsed, 4.5, "refused before the settle time (5 s)")
        XCTAssertLessThan(elapsed, 8, "refused long after the settle time (5 s), with no change to wake the agent")
        let reason = try XCTUnwrap(refused.reasons.first { $0.message.hasPrefix("channel cannot be verified: ") }, "\(refused.reasons)")
        XCTAssertTrue(reason.message.contains("/index.json: bad signature: the signature in index.json.sig does not match these bytes; keeping verified version 1 in force"),
                      reason.message)
        XCTAssertNotNil(refused.channel.error)
        XCTAssertNil(incompleteReason(refused))
        XCTAssertEqual(refused.hotpatch?.level, 1, "the last verified release stays in force")
        try victim.expectSteadyBehaviour(AgentTestHost.level1Output, seconds: 0.3)
        XCTAssertEqual(host.logLines(containing: "Failed to verify the channel").count, 1, host.logTail())

        // The signature landing late still applies the release.
        try land(ChannelFileName.signature, of: host, in: mirror)
        try victim.expectBehaviour(Self.level2Output, timeout: 5)
        try host.waitForStatus("level 2 in force") { $0.hotpatch?.level == 2 && $0.verdict == .upToDate && $0.channel.error == nil }
        XCTAssertEqual(host.stopAgent(), 0)
    }
}
