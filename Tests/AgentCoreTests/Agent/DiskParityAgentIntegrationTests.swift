import AgentProtocol
import Foundation
import Engine
import Glibc
import HotpatchFixtures
import LinuxSystem
import XCTest
@testable import AgentCore

/// A hotpatch that carries the fixed package ("disk parity"), through the real `hotpatch-pack`,
/// channel, `hotpatch-agent`, `agentctl` and dpkg: the agent patches the running processes, then
/// installs the package that replaces the library on disk, asks for no reboot, and names each
/// process it could not patch as still running vulnerable code. Needs root (ptrace, dpkg). Each
/// test's libraries have build-ids of their own and its package a name of its own, purged at the end.
final class DiskParityAgentIntegrationTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace and installs with dpkg: run as root")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-deb"), "needs dpkg-deb")
    }

    /// A `.deb` named `name` at `version` whose one file is `content` (copied) installed at `destination`,
    /// with `postinst` as its maintainer script if given.
    private func buildDeb(_ host: AgentTestHost, name: String, version: String, content: String, destination: String,
                          postinst: String? = nil) throws -> String {
        let tree = host.root + "/deb-\(name)-\(version)"
        try FileManager.default.createDirectory(atPath: tree + "/DEBIAN", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tree + (destination as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: content, toPath: tree + destination)
        try host.write("""
            Package: \(name)
            Version: \(version)
            Architecture: all
            Maintainer: hotpatch-agent tests <root@localhost>
            Description: the fixed library of a disk parity test

            """, to: tree + "/DEBIAN/control")
        if let postinst {
            try host.write(postinst, to: tree + "/DEBIAN/postinst")
            chmod(tree + "/DEBIAN/postinst", 0o755)
        }
        let output = host.root + "/\(name)_\(version)_all.deb"
        try Program.succeed("/usr/bin/dpkg-deb", ["--root-owner-group", "--build", tree, output])
        return output
    }

    /// Installs `name` 1.0 holding the library at `path` as released: the host has the package the
    /// hotpatch's `.deb` upgrades (the agent only upgrades installed packages).
    private func installAsReleased(_ host: AgentTestHost, name: String, library path: String) throws {
        let released = host.root + "/as-released-\(name)"
        try FileManager.default.copyItem(atPath: path, toPath: released)
        let deb = try buildDeb(host, name: name, version: "1.0", content: released, destination: path)
        try Program.succeed("/usr/bin/dpkg", ["--install", deb])
    }

    /// A package name no other test or run uses.
    private func uniquePackage(_ stem: String) -> String {
        "hotpatch-test-parity-\(stem)-" + UUID().uuidString.prefix(8).lowercased()
    }

    /// `dpkg-query`'s status and version of `name` ("installed 2.0"), or nil when unknown.
    private func packageState(_ name: String) throws -> String? {
        let run = try Program.run("/usr/bin/dpkg-query", ["-W", "-f=${db:Status-Status} ${Version}", name])
        return run.status == 0 ? run.output : nil
    }

    private func purge(_ name: String) {
        _ = try? Program.run("/usr/bin/dpkg", ["--purge", name])
    }

    /// Whether `pid` maps `path` as a file replaced on disk (`/proc/PID/maps` says " (deleted)").
    private func mapsDeleted(_ pid: Int32, _ path: String) throws -> Bool {
        try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8).contains(path + " (deleted)")
    }

    func testHotpatchWithDeb_patchesFirst_thenInstallsThePackage_asksForNoReboot_andStillRecognisesTheProcessOnTheDeletedFile() throws {
        let host = try AgentTestHost(name: "parity")
        let builder = FixtureBuilder(outputDirectory: host.root + "/fixtures")
        let program = try TwoObjectProgram(builder: builder, tag: "-parity",
                                           buildIDs: (a: "a9e0c7a1d5e54b4f8f2a0a11c0ffee1a", b: "a9e0c7a1d5e54b4f8f2a0a11c0ffee1b"))
        // V' of libA: its fix built in (a_value adds 100), another build-id; packaged at libA's own path.
        let fixedLibrary = try builder.build("two_objects_lib.c", flags: ["-O0", "-g", "-shared", "-fPIC", "-DFUNCTION=a_value", "-DADD=100",
                                                                          "-Wl,--build-id=0xa9e0c7a1d5e54b4f8f2a0a11c0ffee1c"],
                                             suffix: ".so", as: "two-objects-a_value-fixed")
        let package = uniquePackage("a")
        defer { purge(package) }
        try installAsReleased(host, name: package, library: program.libraryA)
        let deb = try buildDeb(host, name: package, version: "2.0", content: fixedLibrary, destination: program.libraryA)
        // A second carried package this host does not have (a -dev package): left alone.
        let notHere = uniquePackage("a-dev")
        defer { purge(notHere) }
        let notHereDeb = try buildDeb(host, name: notHere, version: "2.0", content: fixedLibrary, destination: "/opt/\(notHere)/liba.so")
        // The publisher keeps V as released: once the package is installed, libA's path holds V'.
        let released = host.root + "/released-" + (program.libraryA as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: program.libraryA, toPath: released)

        let running = try RunningProcess(program.program)
        defer { running.stop() }
        try running.expectBehaviour(TwoObjectProgram.original)

        try host.channel.run(["hotpatch", "--channel", host.channel.channel, "--id", "hp1", "--baseline", AgentTestHost.firstBaseline,
                              "--level", "1", "--target", program.libraryA, "--patch", program.fixA, "--replace", "a_value=a_value_fixed",
                              "--with-deb", deb, "--with-deb", notHereDeb, "--cve", "CVE-2026-1001"])
        try host.publish()
        try host.startAgent()
        try running.expectBehaviour("a=101 b=3")
        let installed = try host.waitForStatus("package installed", timeout: 60) { status in
            status.fixedPackages.first?.state == .installed && host.listsAsPatched([running])
        }

        // The disk: the package is installed, its file replaced the library the process maps.
        XCTAssertEqual(try packageState(package), "installed 2.0")
        XCTAssertEqual(installed.fixedPackages, [.init(hotpatch: "hp1", state: .installed, installedAt: installed.fixedPackages[0].installedAt,
                                                       reason: nil, packages: [.init(name: package, architecture: "all", version: "2.0",
                                                                                     action: "installed", previousVersion: "1.0"),
                                                                               .init(name: notHere, architecture: "all", version: "2.0",
                                                                                     action: "not-installed", previousVersion: nil)])])
        XCTAssertNil(try packageState(notHere), "a carried package the host does not have is never installed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/opt/\(notHere)/liba.so"))
        XCTAssertTrue(try mapsDeleted(running.pid, program.libraryA), "dpkg replaced the library by a rename")
        // No reboot and no restart: the running process kept its pid and runs the fix.
        XCTAssertEqual(installed.verdict, .upToDate, "\(installed.reasons)")
        XCTAssertFalse(installed.reboot.required)
        XCTAssertFalse(FileManager.default.fileExists(atPath: host.rebootRequiredFile))
        XCTAssertTrue(running.isAlive)
        // Memory first, then the disk.
        let log = try String(contentsOfFile: host.agentLog, encoding: .utf8)
        let applied = try XCTUnwrap(log.range(of: "Applied hotpatch hp1 to PID \(running.pid)"), host.logTail())
        let disk = try XCTUnwrap(log.range(of: "Installed the fixed packages of hotpatch hp1 on disk: \(package) 2.0 (installed; was 1.0), \(notHere) 2.0 (not installed here, left alone); no reboot or restart is needed"), host.logTail())
        XCTAssertLessThan(applied.lowerBound, disk.lowerBound)
        let text = try host.agentctl(["status"])
        XCTAssertTrue(text.output.contains("packages:   hp1: installed on disk, no reboot needed — \(package) 2.0 (was 1.0), \(notHere) 2.0 (not installed here, left alone)"),
                      text.output)

        // A process started now loads the fixed file: fixed without the agent, which does not list it.
        let started = try RunningProcess(program.program)
        defer { started.stop() }
        try started.expectBehaviour("a=101 b=3")
        try started.expectSteadyBehaviour("a=101 b=3", seconds: 1.5)
        XCTAssertFalse(host.processes().contains { $0.pid == started.pid }, "the fixed library is no target")

        // A later level still reaches the process that maps the deleted file (build-id read through
        // the mapping, never from the path), and leaves the fixed file's process alone.
        try host.channel.run(["hotpatch", "--channel", host.channel.channel, "--id", "hp2", "--baseline", AgentTestHost.firstBaseline,
                              "--level", "2", "--target", released, "--path-hint", program.libraryA, "--patch", program.fixA2,
                              "--replace", "a_value=a_value_fixed"])
        try host.publish()
        do { try running.expectBehaviour("a=301 b=3") } catch {
            XCTFail("level 2 did not reach the process on the deleted file\n--- agent log ---\n\(host.logTail(lines: 60))")
            throw error
        }
        try host.waitForStatus("level 2 on the deleted file") { $0.hotpatch?.id == "hp2" && host.listsAsPatched([running]) }
        try started.expectSteadyBehaviour("a=101 b=3", seconds: 0.5)
        XCTAssertTrue(try mapsDeleted(running.pid, program.libraryA))

        // A restart of the agent reads the process back as patched and installs nothing again.
        XCTAssertEqual(host.stopAgent(), 0)
        try host.startAgent()
        let after = try host.waitForStatus("restarted agent") { $0.hotpatch?.id == "hp2" && host.listsAsPatched([running]) }
        XCTAssertEqual(after.fixedPackages.map(\.state), [.installed], "the installed packages stay listed")
        XCTAssertEqual(after.verdict, .upToDate, "\(after.reasons)")
        XCTAssertEqual(host.logLines(containing: "Installed the fixed packages of hotpatch").count, 1, host.logTail())
        XCTAssertEqual(try packageState(package), "installed 2.0")
        try running.expectSteadyBehaviour("a=301 b=3", seconds: 0.3)
    }

    func testWhileDpkgInstallsTheFixedPackage_statusAnswers_andSaysItIsInstalling() throws {
        let host = try AgentTestHost(name: "parity-installing")
        let builder = FixtureBuilder(outputDirectory: host.root + "/fixtures")
        let program = try TwoObjectProgram(builder: builder, tag: "-parity-installing",
                                           buildIDs: (a: "a9e0c7a1d5e54b4f8f2a0a11c0ffee3a", b: "a9e0c7a1d5e54b4f8f2a0a11c0ffee3b"))
        let package = uniquePackage("slow")
        defer { purge(package) }
        try installAsReleased(host, name: package, library: program.libraryA)
        // Its maintainer script waits (30 s at most) until the test lets it end: dpkg runs until then.
        let release = host.root + "/let-postinst-end"
        let deb = try buildDeb(host, name: package, version: "2.0", content: program.libraryA, destination: program.libraryA,
                               postinst: "#!/bin/sh\ni=0\nwhile [ ! -e '\(release)' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\nexit 0\n")
        try host.channel.run(["hotpatch", "--channel", host.channel.channel, "--id", "hp1", "--baseline", AgentTestHost.firstBaseline,
                              "--level", "1", "--target", program.libraryA, "--patch", program.fixA, "--replace", "a_value=a_value_fixed",
                              "--with-deb", deb])
        try host.publish()
        try host.startAgent()

        // dpkg waits in the maintainer script, and the agent answers all the same.
        let installing = try host.waitForStatus("installing", timeout: 30) { $0.fixedPackages.first?.state == .installing }
        XCTAssertFalse(FileManager.default.fileExists(atPath: release), "dpkg is still running")
        let since = try XCTUnwrap(installing.fixedPackages[0].installingSince)
        XCTAssertTrue(installing.reasons.contains { $0.verdict == .hotpatchPending && $0.message.contains("being installed on disk (dpkg running since \(since))") },
                      "\(installing.reasons)")
        let text = try host.agentctl(["status"])
        XCTAssertEqual(text.status, 0, text.output)
        XCTAssertTrue(text.output.contains("packages:   hp1: installing on disk now (dpkg running since \(since))"), text.output)

        try host.write("", to: release)
        let installed = try host.waitForStatus("installed", timeout: 40) { $0.fixedPackages.first?.state == .installed }
        XCTAssertNil(installed.fixedPackages[0].installingSince)
        XCTAssertEqual(try packageState(package), "installed 2.0")
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    func testAProcessThatCannotBePatched_isListedAsStillVulnerable_withItsUnit_andTheVerdictIsExposedUntilItIsGone() throws {
        let host = try AgentTestHost(name: "parity-refused")
        let builder = FixtureBuilder(outputDirectory: host.root + "/fixtures")
        let program = try TwoObjectProgram(builder: builder, tag: "-parity-refused",
                                           buildIDs: (a: "a9e0c7a1d5e54b4f8f2a0a11c0ffee2a", b: "a9e0c7a1d5e54b4f8f2a0a11c0ffee2b"))
        let fixedLibrary = try builder.build("two_objects_lib.c", flags: ["-O0", "-g", "-shared", "-fPIC", "-fcf-protection=full",
                                                                          "-DFUNCTION=b_value", "-DADD=200",
                                                                          "-Wl,--build-id=0xa9e0c7a1d5e54b4f8f2a0a11c0ffee2c"],
                                             suffix: ".so", as: "two-objects-b_value-fixed")
        let package = uniquePackage("b")
        defer { purge(package) }
        try installAsReleased(host, name: package, library: program.libraryB)
        let deb = try buildDeb(host, name: package, version: "2.0", content: fixedLibrary, destination: program.libraryB)

        // One process the agent can patch, one whose b_value entry was rewritten (foreign bytes: refused).
        let patchable = try RunningProcess(program.program)
        defer { patchable.stop() }
        let refused = try RunningProcess(program.program, ["--tamper-b"])
        defer { refused.stop() }
        try patchable.expectBehaviour(TwoObjectProgram.original)
        try refused.expectBehaviour(TwoObjectProgram.original)

        try host.channel.run(["hotpatch", "--channel", host.channel.channel, "--id", "hp1", "--baseline", AgentTestHost.firstBaseline,
                              "--level", "1", "--target", program.libraryB, "--patch", program.fixB, "--replace", "b_value=b_value_fixed",
                              "--with-deb", deb])
        try host.publish()
        try host.startAgent()
        try patchable.expectBehaviour("a=2 b=201")
        let exposed = try host.waitForStatus("the refused process listed", timeout: 60) { status in
            status.fixedPackages.first?.state == .installed && status.processes.vulnerable == 1
        }

        // The package went to disk all the same, with no reboot; the refused process runs the old code.
        XCTAssertEqual(try packageState(package), "installed 2.0")
        // The journal does not say that no restart is needed: one process still runs the old code.
        let installedLine = try XCTUnwrap(host.logLines(containing: "Installed the fixed packages of hotpatch hp1").first, host.logTail())
        XCTAssertTrue(installedLine.contains("no reboot is needed, but 1 process(es) still run the vulnerable code ("), installedLine)
        XCTAssertTrue(installedLine.contains("see `agentctl processes`"), installedLine)
        XCTAssertFalse(installedLine.contains("no reboot or restart is needed"), installedLine)
        XCTAssertFalse(exposed.reboot.required)
        XCTAssertFalse(FileManager.default.fileExists(atPath: host.rebootRequiredFile))
        try refused.expectSteadyBehaviour(TwoObjectProgram.original, seconds: 0.3)
        XCTAssertTrue(try mapsDeleted(refused.pid, program.libraryB))

        // Listed as still running vulnerable code, with its unit, in status, processes and the journal.
        XCTAssertEqual(exposed.verdict, .exposed, "\(exposed.reasons)")
        let reason = try XCTUnwrap(exposed.reasons.first { $0.message.hasPrefix("PID \(refused.pid) ") }, "\(exposed.reasons)")
        XCTAssertEqual(reason.verdict, .exposed)
        XCTAssertTrue(reason.message.contains("it still runs vulnerable code: \(program.libraryB)"), reason.message)
        let unit = SystemdUnit.unit(of: try ProcFS.identity(of: ProcessID(refused.pid)))
        let entries = host.processes()
        let entry = try XCTUnwrap(entries.first { $0.pid == refused.pid }, "\(entries)")
        XCTAssertEqual(entry.state, .unpatchable)
        XCTAssertTrue(entry.vulnerable)
        XCTAssertEqual(entry.unit, unit)
        XCTAssertEqual(entry.objects.filter(\.vulnerable).map(\.path), [program.libraryB])
        XCTAssertEqual(entries.first { $0.pid == patchable.pid }?.vulnerable, false)
        let table = try host.agentctl(["processes"])
        XCTAssertEqual(table.status, 0, table.output)
        XCTAssertTrue(table.output.contains("    still running vulnerable code: \(program.libraryB) " + (unit.map { "(unit \($0))" } ?? "(no systemd unit)")),
                      table.output)
        XCTAssertTrue(table.output.contains("1 process(es) still run vulnerable code"), table.output)
        let json = try host.agentctl(["processes", "--json"])
        let listed = try JSONDecoder().decode([ProcessEntry].self, from: Data(json.output.utf8))
        XCTAssertEqual(listed.first { $0.pid == refused.pid }?.vulnerable, true)
        let journal = host.logLines(containing: "PID \(refused.pid) (")
            .filter { $0.contains("still runs vulnerable code: \(program.libraryB) without the fix of hotpatch hp1") }
        XCTAssertEqual(journal.count, 1, host.logTail())

        // Gone: nothing runs vulnerable code any more.
        XCTAssertTrue(refused.stop())
        let clean = try host.waitForStatus("the refused process gone") { $0.processes.vulnerable == 0 && $0.verdict == .upToDate }
        XCTAssertTrue(clean.reasons.allSatisfy { $0.verdict == .upToDate }, "\(clean.reasons)")
        try patchable.expectSteadyBehaviour("a=2 b=201", seconds: 0.3)
    }
}
