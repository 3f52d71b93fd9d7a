import AgentProtocol
import Foundation
import Glibc
import HotpatchFixtures
import XCTest

/// The real `hotpatch-agent` and new processes whose first act is to call a patched function (a
/// cron job, a CGI program, a command-line tool): with the exec gate, each one runs the fix from
/// that first call, whether the target is the executable, a library it links, or one it
/// `dlopen`s first; and the gate never holds a process past the agent's death or hang. Needs root.
final class ExecGateAgentIntegrationTests: XCTestCase {
    private static let libraryBuildID = "e8ec9a7e0000400080000000000000c3"

    override func setUpWithError() throws {
        try XCTSkipUnless(geteuid() == 0, "the agent patches processes through ptrace: run as root")
    }

    private func waitForLog(_ host: AgentTestHost, _ text: String, timeout: Double = 15) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !host.logLines(containing: text).isEmpty { return }
            usleep(20_000)
        }
        throw FixtureError.timeout("no log line with '\(text)'\n--- agent log ---\n\(host.logTail())")
    }

    /// A host whose level-1 hotpatch of the victim executable is in force and whose gate marks it.
    private func gatedHost(_ name: String, arguments: [String] = [], victimFlags: [String] = []) throws -> AgentTestHost {
        let host = try AgentTestHost(name: name, victimFlags: victimFlags)
        try host.addHotpatch(level: 1)
        try host.publish()
        try host.startAgent(arguments)
        try host.waitForStatus("hotpatch in force") { $0.hotpatch?.id == "hp1" }
        try waitForLog(host, "Watching 1 file that holds a targeted object")
        return host
    }

    /// Runs `path arguments` to its end and returns its first line (nil if it printed none within `timeout`).
    private func firstLine(of path: String, _ arguments: [String], timeout: Double = 10) throws -> String? {
        let process = try RunningProcess(path, arguments)
        defer { _ = process.stop(within: 5) }
        return try? process.nextLine(timeout: timeout)
    }

    func testShortLivedRunsOfTheTargetedExecutable_eachRunTheFixFromTheirFirstCall() throws {
        let host = try gatedHost("exec-gate-executable")
        let runs = 20
        var lines: [String] = []
        for _ in 0..<runs { lines.append(try firstLine(of: host.victimPath, ["--once"]) ?? "no output") }
        let fixed = lines.filter { $0 == AgentTestHost.level1Output }.count
        print("exec gate, targeted executable: \(fixed)/\(runs) short-lived processes ran the fix")
        XCTAssertEqual(fixed, runs, "\(lines)\n\(host.logTail())")
        let status = try host.waitForStatus("gate counts") { ($0.execGate?.patched ?? 0) >= runs }
        XCTAssertEqual(status.execGate?.mode, "fanotify")
        XCTAssertNil(status.execGate?.reason)
        // Each run was held: the open that follows its exec's event is covered by that hold, not
        // an opener the gate let through unheld.
        XCTAssertEqual(status.execGate?.notHeld, 0, String(describing: status.execGate))
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    func testShortLivedRunsOfAStaticOrNoRELROExecutable_eachRunTheFixFromTheirFirstCall() throws {
        for (label, flags) in [("static", ["-static"]), ("static-pie", ["-static-pie"]), ("norelro", ["-Wl,-z,norelro"])] {
            let host = try gatedHost("exec-gate-\(label)", victimFlags: flags)
            let runs = 10
            var lines: [String] = []
            let started = Date()
            for _ in 0..<runs { lines.append(try firstLine(of: host.victimPath, ["--once"]) ?? "no output") }
            let seconds = Date().timeIntervalSince(started)
            let fixed = lines.filter { $0 == AgentTestHost.level1Output }.count
            print("exec gate, \(label) executable: \(fixed)/\(runs) short-lived processes ran the fix in \(seconds) s; \(String(describing: host.status()?.execGate))")
            XCTAssertEqual(fixed, runs, "\(label): \(lines)\n\(host.logTail(lines: 60))")
            XCTAssertEqual(host.stopAgent(), 0, host.logTail())
        }
    }

    func testAStaticExecutableWithoutRELRO_isLetGoEarlySayingNothingMarksItsRelocation() throws {
        // No RELRO and no dynamic linker: no system call marks the end of its start. The usual path
        // patches it after its start; the gate lets it go once its first system calls show that.
        let host = try gatedHost("exec-gate-static-norelro", victimFlags: ["-static", "-Wl,-z,norelro"])
        let line = try firstLine(of: host.victimPath, ["--once"])
        XCTAssertNotNil(line)
        let status = try host.waitForStatus("the exec let go") { ($0.execGate?.letGo ?? 0) >= 1 }
        XCTAssertEqual(status.execGate?.lastLetGo?.contains("has no RELRO (linked with -z norelro) and the program has no dynamic linker"),
                       true, String(describing: status.execGate))
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    func testShortLivedRunsExecutedFromAThreadOtherThanTheLeader_eachRunTheFixFromTheirFirstCall() throws {
        let host = try gatedHost("exec-gate-thread-exec")
        let executor = try FixtureBuilder().threadExecutor()
        let runs = 10
        var lines: [String] = []
        for _ in 0..<runs { lines.append(try firstLine(of: executor, [host.victimPath, "--once"]) ?? "no output") }
        let fixed = lines.filter { $0 == AgentTestHost.level1Output }.count
        print("exec gate, targeted executable run from a second thread: \(fixed)/\(runs) ran the fix")
        XCTAssertEqual(fixed, runs, "\(lines)\n\(host.logTail())")
        let status = try host.waitForStatus("gate counts") { ($0.execGate?.patched ?? 0) >= runs }
        XCTAssertEqual(status.execGate?.letGo, 0, status.execGate?.lastLetGo ?? "")
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    func testIdleAgent_afterTheGatePatchedNewProcesses_unmapsTheCodeThatRan() throws {
        // Polled each second, the agent is never quiet for long: an hour, as on a real host.
        let host = try gatedHost("exec-gate-idle-memory", arguments: ["--poll-interval", "1h"])
        let victims = try (0..<5).map { _ in try host.startVictim(threads: 1) }
        let status = try host.waitForStatus("patched at their start") { ($0.execGate?.patched ?? 0) >= victims.count }
        XCTAssertGreaterThanOrEqual(status.execGate?.patched ?? 0, victims.count)
        try host.expectCodeReleasedWhenQuiet()
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    /// A host whose hotpatch of a library (`LateLoadFixture`'s, built with `libraryFlags`) is in
    /// force and gated, with a program linking it and one `dlopen`ing it, each calling it first.
    private func gatedLibraryHost(_ name: String, libraryFlags: [String] = []) throws -> (host: AgentTestHost, fixture: LateLoadFixture,
                                                                                           linked: String, loader: String) {
        let host = try AgentTestHost(name: name)
        let fixture = try LateLoadFixture(in: host.root, buildID: Self.libraryBuildID, libraryFlags: libraryFlags)
        let linked = try FixtureBuilder.compile(text: Self.linkedFirstCall, to: host.root + "/first-call-linked",
                                                flags: ["-O1", "-Wl,--no-as-needed", fixture.library,
                                                        "-Wl,-rpath," + (fixture.library as NSString).deletingLastPathComponent])
        let loader = try FixtureBuilder.compile(text: Self.dlopenFirstCall, to: host.root + "/first-call-dlopen", flags: ["-O1", "-ldl"])
        try host.channel.addHotpatch(id: "late1", baseline: AgentTestHost.firstBaseline, level: 1, target: fixture.library,
                                     patch: try LateLoadFixture.patchObject(in: host.root),
                                     replacements: ["late_value": "late_value_fixed"], description: "late_value returns 2")
        try host.publish()
        try host.startAgent()
        try host.waitForStatus("hotpatch in force") { $0.hotpatch?.id == "late1" }
        try waitForLog(host, "Watching 1 file that holds a targeted object")
        return (host, fixture, linked, loader)
    }

    func testShortLivedProgramsThatLinkOrDlopenTheTargetedLibrary_eachRunTheFixFromTheirFirstCall() throws {
        let (host, fixture, linked, loader) = try gatedLibraryHost("exec-gate-library")
        let runs = 10
        var linkedLines: [String] = []
        var loaderLines: [String] = []
        for _ in 0..<runs {
            linkedLines.append(try firstLine(of: linked, []) ?? "no output")
            loaderLines.append(try firstLine(of: loader, [fixture.library]) ?? "no output")
        }
        let linkedFixed = linkedLines.filter { $0 == "late_value=2" }.count
        let loaderFixed = loaderLines.filter { $0 == "late_value=2" }.count
        print("exec gate, library linked at start: \(linkedFixed)/\(runs); dlopened first: \(loaderFixed)/\(runs) ran the fix; "
              + "gate \(String(describing: host.status()?.execGate))")
        XCTAssertEqual(linkedFixed, runs, "\(linkedLines)\n\(String(describing: host.status()?.execGate))\n\(host.logTail(lines: 80))")
        XCTAssertEqual(loaderFixed, runs, "\(loaderLines)\n\(host.logTail())")
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    func testALibraryLinkedWithoutRELRO_isPatchedAtTheDynamicLinkersOwnMark_andOneDlopenedLater_isLetGoAtOnceSayingWhy() throws {
        let (host, fixture, linked, loader) = try gatedLibraryHost("exec-gate-norelro-library", libraryFlags: ["-Wl,-z,norelro"])
        let runs = 10
        var linkedLines: [String] = []
        for _ in 0..<runs { linkedLines.append(try firstLine(of: linked, []) ?? "no output") }
        let linkedFixed = linkedLines.filter { $0 == "late_value=2" }.count
        print("exec gate, library without RELRO linked at start: \(linkedFixed)/\(runs) ran the fix")
        XCTAssertEqual(linkedFixed, runs, "\(linkedLines)\n\(String(describing: host.status()?.execGate))\n\(host.logTail(lines: 80))")

        // Loaded after the start, nothing marks its relocation: held only until its mapping shows
        // that, then let go to the usual path, which patches it a few milliseconds later.
        let loaded = try firstLine(of: loader, [fixture.library])
        XCTAssertTrue(loaded == "late_value=1" || loaded == "late_value=2", String(describing: loaded))
        let status = try host.waitForStatus("the dlopen let go") { ($0.execGate?.letGo ?? 0) >= 1 }
        XCTAssertEqual(status.execGate?.lastLetGo?.contains("has no RELRO (linked with -z norelro) and is loaded after the start of the program"),
                       true, String(describing: status.execGate))
        XCTAssertEqual(status.execGate?.patched, runs, String(describing: status.execGate))
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    /// A host whose hotpatch fixes two libraries, libB depending on libA (`a_value` returns 2, fixed
    /// 102; `b_value` 3, fixed 203), and whose gate marks both. `programs` builds the programs that
    /// use them (in the libraries' folder, with libA and libB) before the agent starts, so that the
    /// linker's reads of the libraries are no events of the gate; it returns what it built.
    private func twoLibraryHost(_ name: String, buildIDs: (a: String, b: String),
                                programs: (_ directory: String, _ libraryA: String, _ libraryB: String) throws -> [String])
        throws -> (host: AgentTestHost, programs: [String]) {
        let host = try AgentTestHost(name: name)
        let directory = host.root + "/two"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let libraryA = try FixtureBuilder.compile(text: "int a_value(void) { return 2; }\n", to: directory + "/libgatea.so",
                                                  flags: ["-O0", "-shared", "-fPIC", "-Wl,--build-id=0x" + buildIDs.a])
        let libraryB = try FixtureBuilder.compile(text: "int a_value(void);\nint b_value(void) { return 3 + 0 * a_value(); }\n",
                                                  to: directory + "/libgateb.so",
                                                  flags: ["-O0", "-shared", "-fPIC", "-Wl,--no-as-needed", libraryA,
                                                          "-Wl,--build-id=0x" + buildIDs.b])
        let fixA = try FixtureBuilder.compile(text: "int a_value_fixed(void) { return 102; }\n", to: directory + "/fix-a.so",
                                              flags: ["-O2", "-shared", "-fPIC"])
        let fixB = try FixtureBuilder.compile(text: "int b_value_fixed(void) { return 203; }\n", to: directory + "/fix-b.so",
                                              flags: ["-O2", "-shared", "-fPIC"])
        try host.channel.run(["hotpatch", "--channel", host.channel.channel, "--id", "two1", "--baseline", AgentTestHost.firstBaseline,
                              "--level", "1", "--description", "both libraries",
                              "--target", libraryA, "--patch", fixA, "--replace", "a_value=a_value_fixed",
                              "--target", libraryB, "--patch", fixB, "--replace", "b_value=b_value_fixed"])
        let built = try programs(directory, libraryA, libraryB)
        try host.publish()
        try host.startAgent()
        try host.waitForStatus("hotpatch in force") { $0.hotpatch?.id == "two1" }
        try waitForLog(host, "Watching 2 files that hold a targeted object")
        return (host, built)
    }

    func testAProgramLinkingTwoTargetedLibraries_theSecondRelocatedAfterTheFirst_runsBothFixesFromItsFirstCalls() throws {
        // libB depends on libA and the program links libA first: the gate holds the process at
        // libA's open, and the dynamic linker relocates libA (a dependency) before libB. Both must
        // be fixed before the program's first call, not libA alone.
        let (host, programs) = try twoLibraryHost("exec-gate-two-libraries", buildIDs: Self.twoLibraryBuildIDs) { directory, libraryA, libraryB in
            [try FixtureBuilder.compile(text: """
                #include <stdio.h>
                int a_value(void);
                int b_value(void);
                int main(void) { printf("a=%d b=%d\\n", a_value(), b_value()); return 0; }
                """, to: directory + "/two-libraries", flags: ["-O1", "-Wl,--no-as-needed", libraryA, libraryB, "-Wl,-rpath," + directory])]
        }
        let program = programs[0]

        let runs = 10
        var lines: [String] = []
        for _ in 0..<runs { lines.append(try firstLine(of: program, []) ?? "no output") }
        let fixed = lines.filter { $0 == "a=102 b=203" }.count
        print("exec gate, two targeted libraries, the second relocated after the first: \(fixed)/\(runs) ran both fixes; "
              + "gate \(String(describing: host.status()?.execGate))")
        XCTAssertEqual(fixed, runs, "\(lines)\n\(String(describing: host.status()?.execGate))\n\(host.logTail(lines: 60))")
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    private static let twoLibraryBuildIDs = (a: "e8ec9a7e0000400080000000000002a1", b: "e8ec9a7e0000400080000000000002b1")

    func testADlopenThatMapsTwoTargetedLibraries_theSecondRelocatedAfterTheFirst_runsBothFixesFromTheFirstCalls() throws {
        // The program dlopens libX, which links libA then libB (libB depending on libA): the gate
        // holds the thread at libA's open (the first targeted file the load opens), and the
        // dynamic linker relocates libA before libB. After the start of the program no mark of the
        // linker's own follows the last object, so the hold must wait for libB's mark too.
        let (host, programs) = try twoLibraryHost("exec-gate-two-dlopened", buildIDs: Self.twoDlopenedBuildIDs, programs: Self.dlopenedPair)
        let (loader, libraryX) = (programs[0], programs[1])

        let runs = 10
        var lines: [String] = []
        for _ in 0..<runs { lines.append(try firstLine(of: loader, [libraryX]) ?? "no output") }
        let fixed = lines.filter { $0 == "a=102 b=203" }.count
        print("exec gate, one dlopen mapping two targeted libraries, the second relocated after the first: \(fixed)/\(runs) "
              + "ran both fixes; gate \(String(describing: host.status()?.execGate))")
        XCTAssertEqual(fixed, runs, "\(lines)\n\(String(describing: host.status()?.execGate))\n\(host.logTail(lines: 60))")
        let status = try host.waitForStatus("gate counts") { ($0.execGate?.patched ?? 0) >= runs }
        // Every run was held to the end of both relocations and patched there, none let go.
        XCTAssertEqual(status.execGate?.letGo, 0, String(describing: status.execGate))
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    private static let twoDlopenedBuildIDs = (a: "e8ec9a7e0000400080000000000002a2", b: "e8ec9a7e0000400080000000000002b2")

    /// libX, linking libA then libB, and a loader that dlopens the library it is given, then
    /// prints "a=N b=M" from the first calls of both: [loader, libX].
    private static func dlopenedPair(in directory: String, libraryA: String, libraryB: String) throws -> [String] {
        let libraryX = try FixtureBuilder.compile(text: "int x_value(void) { return 1; }\n", to: directory + "/libgatex.so",
                                                  flags: ["-O0", "-shared", "-fPIC", "-Wl,--no-as-needed", libraryA, libraryB,
                                                          "-Wl,-rpath," + directory])
        let loader = try FixtureBuilder.compile(text: """
            #include <dlfcn.h>
            #include <stdio.h>
            int main(int argc, char **argv) {
                void *x = argc > 1 ? dlopen(argv[1], RTLD_NOW) : NULL;
                int (*a)(void) = x ? (int (*)(void))dlsym(x, "a_value") : NULL;
                int (*b)(void) = x ? (int (*)(void))dlsym(x, "b_value") : NULL;
                if (!a || !b) { printf("dlopen failed: %s\\n", dlerror()); return 1; }
                printf("a=%d b=%d\\n", a(), b());
                return 0;
            }
            """, to: directory + "/two-dlopened", flags: ["-O1"])
        return [loader, libraryX]
    }

    /// Runs `program arguments` `runs` times in a shell loop, kills `host`'s agent in the middle
    /// of it (at whatever step of a hold it is), and returns every run's line once the loop is done.
    private func linesOfRuns(_ program: String, _ arguments: [String], runs: Int, killingTheAgentOf host: AgentTestHost) throws -> [String] {
        let quoted = arguments.indices.map { " \"$\($0 + 1)\"" }.joined()
        let loop = try RunningProcess("/bin/sh", ["-c", "i=0; while [ $i -lt \(runs) ]; do \"$0\"\(quoted); i=$((i+1)); done; echo done",
                                                  program] + arguments)
        defer { _ = loop.stop(within: 5) }
        _ = try loop.waitForLine(timeout: 20) { _ in true }
        usleep(useconds_t.random(in: 20_000...120_000))
        host.agent?.kill(SIGKILL)
        var lines: [String] = []
        while true {
            let line = try loop.nextLine(timeout: 20)
            if line == "done" { break }
            lines.append(line)
        }
        return lines
    }

    func testKillingTheAgentWhileNewProcessesStart_neverLeavesOneStoppedOrTraced() throws {
        let host = try gatedHost("exec-gate-kill")
        let runs = 150
        let lines = try linesOfRuns(host.victimPath, ["--once"], runs: runs, killingTheAgentOf: host)
        XCTAssertEqual(lines.count + 1, runs, "every run ended: none was left stopped or traced")
        XCTAssertTrue(lines.allSatisfy { $0 == AgentTestHost.level1Output || $0 == "parse_length(100)=100 banner=1" }, "\(lines)")
    }

    func testKillingTheAgentWhileDlopensOfTwoTargetsAreHeld_neverLeavesOneStoppedOrTraced_norHalfAFixInOrder() throws {
        // The hold of such a load spans two patches (libA at its mark, libB at its own): the
        // agent's death between them, or in either, must leave the loader running to its end.
        let (host, programs) = try twoLibraryHost("exec-gate-kill-two", buildIDs: Self.killTwoBuildIDs, programs: Self.dlopenedPair)
        let runs = 150
        let lines = try linesOfRuns(programs[0], [programs[1]], runs: runs, killingTheAgentOf: host)
        print("exec gate, agent killed in a loop of dlopens of two targets: "
              + Dictionary(grouping: lines, by: { $0 }).mapValues(\.count).sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: ", "))
        XCTAssertEqual(lines.count + 1, runs, "every run ended: none was left stopped or traced")
        // libB is patched after libA in the hold, never before it; a run the agent's death
        // caught in between runs libA's fix alone.
        XCTAssertTrue(lines.allSatisfy { ["a=102 b=203", "a=102 b=3", "a=2 b=3"].contains($0) }, "\(lines)")
    }

    private static let killTwoBuildIDs = (a: "e8ec9a7e0000400080000000000002a3", b: "e8ec9a7e0000400080000000000002b3")

    func testAStoppedAgent_isKilledByItsWatchdog_andTheOpenersItHeldGoOn() throws {
        let host = try gatedHost("exec-gate-stopped")
        guard let agent = host.agent else { return XCTFail("no agent") }
        agent.kill(SIGSTOP)
        let started = Date()
        let line = try firstLine(of: host.victimPath, ["--once"], timeout: 15)
        let waited = Date().timeIntervalSince(started)
        print("exec gate, agent stopped: the exec went on after \(String(format: "%.2f", waited)) s")
        XCTAssertEqual(line, "parse_length(100)=100 banner=1", "the exec ran, unpatched")
        XCTAssertLessThan(waited, 8, "bounded by the watchdog's timeout")
        XCTAssertEqual(agent.wait(timeout: 5), 128 + SIGKILL, "the watchdog killed the stopped agent\n\(host.logTail())")
    }

    func testWithTheGateTurnedOff_statusSaysSoAndWhy() throws {
        let host = try gatedHost("exec-gate-off", arguments: ["--exec-gate", "false"])
        let status = try XCTUnwrap(host.status())
        XCTAssertEqual(status.execGate?.mode, "off")
        XCTAssertTrue(status.execGate?.reason?.contains("exec_gate") == true || status.execGate?.reason?.contains("ExecGate") == true,
                      "\(String(describing: status.execGate))")
        let (code, text) = try host.agentctl(["status"])
        XCTAssertEqual(code, 0)
        XCTAssertTrue(text.contains("exec gate off"), text)
        XCTAssertEqual(host.stopAgent(), 0, host.logTail())
    }

    static let linkedFirstCall = """
        #include <stdio.h>
        int late_value(void);
        int main(void) { printf("late_value=%d\\n", late_value()); return 0; }
        """

    static let dlopenFirstCall = """
        #include <dlfcn.h>
        #include <stdio.h>
        int main(int argc, char **argv) {
            void *handle = dlopen(argv[1], RTLD_NOW);
            if (!handle) { printf("dlopen failed: %s\\n", dlerror()); return 1; }
            printf("late_value=%d\\n", ((int (*)(void))dlsym(handle, "late_value"))());
            return 0;
        }
        """
}
