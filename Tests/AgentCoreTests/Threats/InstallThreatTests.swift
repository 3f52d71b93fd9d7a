import AgentProtocol
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import XCTest

/// Issue 14, findings 4, 5 and 9, played against the real `hotpatch-pack` and `hotpatch-agent`:
/// a local user who owns a directory (or a link) on a destination's path tries to redirect a root
/// write; an install that fails must not read as "up to date"; a private baseline file must never
/// become readable by another user on its way from the publisher to the host.
final class InstallThreatTests: XCTestCase {
    private static let nobody: uid_t = 65534

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "plays a local user with chown and setpriv: run as root")
    }

    /// `hotpatch-agent --once` on the host's paths: its exit status and everything it printed.
    private func runOnce(_ host: AgentTestHost) throws -> (status: Int32, output: String) {
        let finished = try ChildProcess.run(host.products + "/hotpatch-agent", host.agentArguments + ["--once", "--deadline", "5s"],
                                            timeoutSeconds: 120)
        return (finished.status, String(decoding: finished.output + finished.errorOutput, as: UTF8.self))
    }

    /// Whether uid `nobody` can read `path` (through `setpriv`, as a real other user).
    private func nobodyCanRead(_ path: String) throws -> Bool {
        let finished = try ChildProcess.run("/usr/bin/setpriv", ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups",
                                                                 "/bin/cat", path])
        return finished.status == 0
    }

    private func mode(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
    }

    // MARK: Finding 9: writes through what another user controls

    func testBaseline_whoseDestinationGoesThroughADirectoryOwnedByNobody_isRefusedWithThePath_andNothingIsWritten() throws {
        let host = try AgentTestHost(name: "install-threat-dir")
        let shared = host.root + "/shared"
        try FileManager.default.createDirectory(atPath: shared + "/etc", withIntermediateDirectories: true)
        XCTAssertEqual(chown(shared, Self.nobody, Self.nobody), 0)
        try host.write("attacker's choice\n", to: host.root + "/payload")
        try host.channel.addBaseline(id: "B2", files: [host.root + "/payload": shared + "/etc/app.conf"])
        try host.publish()

        let once = try runOnce(host)
        XCTAssertEqual(once.status, 3, "a baseline that could not be installed is exposed: \(once.output)")
        XCTAssertTrue(once.output.contains("baseline B2 failed to install"), once.output)
        XCTAssertTrue(once.output.contains("Refusing to write \(shared)/etc/app.conf: \(shared) is a directory owned by uid 65534"), once.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: shared + "/etc/app.conf"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: host.rebootRequiredFile), "nothing installed, no reboot asked for")
    }

    func testBaseline_whoseDestinationGoesThroughALinkNobodyPlanted_neverWritesWhereItPoints() throws {
        let host = try AgentTestHost(name: "install-threat-link")
        // Root's directory, and a link to it that nobody owns (in a directory nobody owns too, as
        // a user's home or a shared folder would be).
        let protected = host.root + "/protected"
        try FileManager.default.createDirectory(atPath: protected, withIntermediateDirectories: true)
        try host.write("root's own\n", to: protected + "/app.conf")
        let home = host.root + "/home"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        chmod(home, 0o755)
        XCTAssertEqual(symlink(protected, home + "/app"), 0)
        XCTAssertEqual(lchown(home + "/app", Self.nobody, Self.nobody), 0)
        try host.write("attacker's choice\n", to: host.root + "/payload")
        try host.channel.addBaseline(id: "B2", files: [host.root + "/payload": home + "/app/app.conf"])
        try host.publish()

        let once = try runOnce(host)
        XCTAssertEqual(once.status, 3, once.output)
        XCTAssertTrue(once.output.contains("Refusing to write \(home)/app/app.conf: \(home)/app is a symbolic link owned by uid 65534"), once.output)
        XCTAssertEqual(try String(contentsOfFile: protected + "/app.conf", encoding: .utf8), "root's own\n")
    }

    // MARK: Finding 4: a failed install is seen, and is not retried on every poll

    func testFailedInstall_makesOnceExitExposed_statusNamesIt_andTheDaemonRetriesOnlyOnANewIndex() throws {
        let host = try AgentTestHost(name: "install-threat-fail")
        try host.write("new release\n", to: host.root + "/payload")
        // The destination's directory does not exist: the install fails on every host.
        try host.channel.addBaseline(id: "B2", files: [host.root + "/payload": host.root + "/missing/release"])
        try host.publish()

        let first = try runOnce(host)
        XCTAssertEqual(first.status, 3, first.output)
        XCTAssertTrue(first.output.contains("exposed: baseline B2 failed to install (attempt 1"), first.output)
        XCTAssertTrue(first.output.contains(host.root + "/missing"), "the error names the path: \(first.output)")
        // Within the backoff, a second run does not try again, and still says so.
        let second = try runOnce(host)
        XCTAssertEqual(second.status, 3, second.output)
        XCTAssertTrue(second.output.contains("baseline B2 failed to install (attempt 1"), second.output)
        XCTAssertFalse(second.output.contains("Failed to install B2"), "no new attempt, no new log line: \(second.output)")

        // The daemon polls every second: still one attempt, and status --json carries the reason.
        try host.startAgent()
        let status = try host.waitForStatus("failed baseline reported") { $0.channel.lastCheck != nil }
        XCTAssertEqual(status.verdict, .exposed)
        XCTAssertTrue(status.reasons.contains { $0.verdict == .exposed && $0.message.contains("baseline B2 failed to install") }, "\(status.reasons)")
        Thread.sleep(forTimeInterval: 3)
        XCTAssertEqual(host.logLines(containing: "Failed to install B2").count, 0,
                       "the same index within the backoff is not tried again, so no line per poll:\n\(host.logTail())")

        // A new index version is tried at once; once the directory exists, it installs.
        try FileManager.default.createDirectory(atPath: host.root + "/missing", withIntermediateDirectories: true)
        try host.publish()
        let installed = try host.waitForStatus("installed after the fix") { $0.verdict == .rebootRequired }
        XCTAssertFalse(installed.reasons.contains { $0.message.contains("failed to install") }, "\(installed.reasons)")
        XCTAssertEqual(try String(contentsOfFile: host.root + "/missing/release", encoding: .utf8), "new release\n")
        XCTAssertEqual(try String(contentsOfFile: host.rebootRequiredFile + ".pkgs", encoding: .utf8), "hotpatch-agent\n")
        host.stopAgent()
    }

    // MARK: Finding 5: a private file stays private from publisher to host

    func testPrivateBaselineFile_isNeverReadableByAnotherUser_inChannelStoreStateOrInstall() throws {
        let host = try AgentTestHost(name: "install-threat-private")
        let secret = "-----BEGIN PRIVATE KEY----- \(UUID().uuidString)\n"
        let source = host.root + "/secret.key"
        try host.write(secret, to: source)
        chmod(source, 0o600)
        let destination = host.installedDirectory + "/secret.key"
        try host.channel.addBaseline(id: "B2", files: [source: destination])
        try host.publish()
        XCTAssertFalse(FileManager.default.fileExists(atPath: host.stateDirectory), "the agent creates its state directory")

        let once = try runOnce(host)
        XCTAssertEqual(once.status, 2, "installed, reboot required: \(once.output)")
        XCTAssertEqual(try mode(destination), 0o600)
        XCTAssertEqual(try mode(host.stateDirectory), 0o711, "others may reach the patch objects, not list the state")
        XCTAssertFalse(try nobodyCanRead(destination))

        // Every copy of the secret, wherever the publisher and the agent put one.
        var copies: [String] = []
        for folder in [host.channel.channel, host.stateDirectory] {
            let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: folder))
            while let relative = enumerator.nextObject() as? String {
                let path = folder + "/" + relative
                if (try? String(contentsOfFile: path, encoding: .utf8)) == secret { copies.append(path) }
            }
        }
        XCTAssertGreaterThanOrEqual(copies.count, 2, "the channel copy and the store copy: \(copies)")
        for copy in copies {
            XCTAssertEqual(try mode(copy), 0o600, copy)
            XCTAssertFalse(try nobodyCanRead(copy), "nobody read \(copy)")
        }
        // The patch objects' way stays open: nobody may pass through the state directory.
        let listing = try ChildProcess.run("/usr/bin/setpriv", ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups",
                                                                "/bin/ls", host.stateDirectory])
        XCTAssertNotEqual(listing.status, 0, "nobody listed the state directory")
    }
}
