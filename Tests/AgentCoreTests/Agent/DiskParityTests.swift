import AgentProtocol
@testable import Artifact
import Foundation
import LinuxSystem
import Synchronization
import Testing
@testable import AgentCore
@testable import Engine

/// A hotpatch that carries its fixed packages, on values alone: which releases' packages belong on
/// disk, once per release, failures retried with a backoff, no reboot; which processes still run
/// vulnerable code, named with their systemd unit, in status, `agentctl processes` and the journal.
@Suite struct DiskParityTests {
    private let now = Date(timeIntervalSince1970: 1_800_000_000)
    private static let libA = BuildID(hex: "aa01")!
    private static let libB = BuildID(hex: "bb02")!

    private static func target(_ buildID: BuildID, _ path: String) -> HotpatchTarget {
        HotpatchTarget(buildID: buildID, pathHint: path, patchObjectPath: "/store/objects/\(buildID).so", redirections: [])
    }

    private static func package(_ name: String) -> InstallableFile {
        InstallableFile(kind: .deb, channelPath: "hotpatches/x/packages/\(name).deb", storePath: "/store/installs/\(name).deb",
                        sha256: "00", length: 1)
    }

    /// hp1 (level 1) fixes libA and carries libA's package; hp2 (level 2) fixes libB and carries libB's.
    private static func channel(version: Int = 3, hp2Packages: [InstallableFile] = [package("libb1")]) -> VerifiedChannel {
        VerifiedChannel(version: version, expires: .distantFuture, releases: [
            .baseline(BaselineRelease(id: "B1", planned: true, description: "", cves: [], files: [])),
            .hotpatch(HotpatchRelease(hotpatch: Hotpatch(id: "hp1", baseline: "B1", level: 1, targets: [target(libA, "/usr/lib/liba.so.1")]),
                                      description: "", cves: [], packages: [package("liba1")])),
            .hotpatch(HotpatchRelease(hotpatch: Hotpatch(id: "hp2", baseline: "B1", level: 2, targets: [target(libB, "/usr/lib/libb.so.1")]),
                                      description: "", cves: [], packages: hp2Packages)),
        ], keyFingerprint: "ab", indexSHA256: "cd")
    }

    private static func plan(_ channel: VerifiedChannel, held: Set<String> = [], enrolled: Bool = true) -> ReleasePlan {
        ReleasePlan.decide(releases: channel.releases, activeBaseline: "B1", installed: ["B1"], pendingReboot: [], quarantined: [],
                           held: held, enrolled: enrolled)
    }

    /// What the install action was asked, in order.
    private final class Calls: Sendable {
        let list = Mutex<[String]>([])
        var all: [String] { list.withLock { $0 } }
    }

    private func installation(_ calls: Calls, failing: Set<String> = []) -> CarriedPackageInstallation {
        CarriedPackageInstallation(install: { packages, release in
            calls.list.withLock { $0.append("\(release): " + packages.map(\.channelPath).joined(separator: " ")) }
            if failing.contains(release) {
                throw AgentCoreError.installFailed(releaseID: release, reason: "dpkg --install exited with status 1: dependency problems",
                                                   rollback: "no package's installed version changed")
            }
            return packages.map { .init(name: Files.baseName($0.channelPath), architecture: "amd64", version: "2.0",
                                        action: .installed, previousVersion: "1.0") }
        })
    }

    // MARK: Which packages, when

    @Test func releasesInForce_areTheLevelInForceAndEachEarlierLevelWhoseFixStillRuns_inLevelOrder() {
        let channel = Self.channel()
        #expect(CarriedPackageInstallation.releasesInForce(Self.plan(channel), channel: channel).map(\.id) == ["hp1", "hp2"])
        // hp2 held: level 1 is in force; its package only.
        #expect(CarriedPackageInstallation.releasesInForce(Self.plan(channel, held: ["hp2"]), channel: channel).map(\.id) == ["hp1"])
        // Unenrolled, or every level held: nothing is brought to the disk.
        #expect(CarriedPackageInstallation.releasesInForce(Self.plan(channel, enrolled: false), channel: channel).isEmpty)
        #expect(CarriedPackageInstallation.releasesInForce(Self.plan(channel, held: ["hp1", "hp2"]), channel: channel).isEmpty)
        // A release without packages is left out.
        let memoryOnly = Self.channel(hp2Packages: [])
        #expect(CarriedPackageInstallation.releasesInForce(Self.plan(memoryOnly), channel: memoryOnly).map(\.id) == ["hp1"])
    }

    @Test func run_installsEachReleaseOnce_recordsIt_andAsksForNoReboot() {
        let calls = Calls()
        let channel = Self.channel()
        var state = AgentState()
        let events = installation(calls).run(plan: Self.plan(channel), channel: channel, state: &state, now: now)
        #expect(calls.all == ["hp1: hotpatches/x/packages/liba1.deb", "hp2: hotpatches/x/packages/libb1.deb"])
        #expect(events.map(\.event) == [.packagesInstalled, .packagesInstalled])
        #expect(events.allSatisfy { $0.inHistory && $0.level == .notice })
        #expect(events[0].message == "Installed the fixed packages of hotpatch hp1 on disk: liba1.deb 2.0 (installed; was 1.0); no reboot or restart is needed (running processes run the hotpatch)")
        #expect(events[0].metadata["hotpatch.packages"] == "liba1.deb 2.0 (installed; was 1.0)")
        #expect(state.carriedInstalls.map(\.release) == ["hp1", "hp2"])
        #expect(state.carriedInstalls.allSatisfy { $0.isInstalled && $0.installedAt == RFC3339.format(now.timeIntervalSince1970) })
        #expect(state.pendingReboot.isEmpty, "a hotpatch's packages never wait for a reboot")
        #expect(!events.contains { $0.event == .rebootRequired })

        // Again (a re-scan, a restart with the saved state, a new channel version): nothing is installed twice.
        let again = installation(calls).run(plan: Self.plan(Self.channel(version: 4)), channel: Self.channel(version: 4), state: &state,
                                            now: now.addingTimeInterval(3600))
        #expect(again.isEmpty)
        #expect(calls.all.count == 2)
    }

    @Test func run_whenProcessesStillRunVulnerableCode_saysHowManyWhyAndWhereToSeeThem_notThatNoRestartIsNeeded() {
        let channel = Self.channel()
        var state = AgentState()
        let exposed = CarriedPackageInstallation.StillExposed(unpatched: 1, pending: 2, excluded: 3)
        let events = installation(Calls()).run(plan: Self.plan(channel), channel: channel, state: &state, now: now, exposed: exposed)
        #expect(events.count == 2)
        #expect(events[0].message == "Installed the fixed packages of hotpatch hp1 on disk: liba1.deb 2.0 (installed; was 1.0); no reboot is needed, but 6 process(es) still run the vulnerable code (1 could not be patched, 2 pending a retry, 3 excluded by configuration (exclude_executables/exclude_units: not patched, by the administrator's choice)): each loads the fixed files only once patched or restarted; see `agentctl processes`")
        #expect(!events.contains { $0.message.contains("no reboot or restart is needed") })
        let excludedOnly = CarriedPackageInstallation.installedMessage(release: "hp1", list: "x", exposed: .init(unpatched: 0, pending: 0, excluded: 1))
        #expect(excludedOnly.contains("1 process(es) still run the vulnerable code (1 excluded by configuration"), "\(excludedOnly)")
    }

    @Test func describe_aCarriedPackageNotInstalledHere_saysItWasLeftAlone() {
        let packages: [CarriedPackageState] = [.init(name: "libexpat1-dev", architecture: "amd64", version: "2.5.0-1+deb12u1",
                                                     action: .notInstalled, previousVersion: nil)]
        #expect(CarriedPackageInstallation.describe(packages) == "libexpat1-dev 2.5.0-1+deb12u1 (not installed here, left alone)")
        let line = ControlText.fixedPackagesLine(.init(hotpatch: "hp1", state: .installed, installedAt: nil, reason: nil, packages: [
            .init(name: "libexpat1-dev", architecture: "amd64", version: "2.5.0-1+deb12u1", action: "not-installed", previousVersion: nil),
        ]))
        #expect(line == "hp1: installed on disk, no reboot needed — libexpat1-dev 2.5.0-1+deb12u1 (not installed here, left alone)")
    }

    @Test func run_whenDpkgFails_recordsTheFailure_retriesOnANewChannelVersionOrAfterTheBackoff_only() throws {
        let calls = Calls()
        let channel = Self.channel()
        var state = AgentState()
        let events = installation(calls, failing: ["hp2"]).run(plan: Self.plan(channel), channel: channel, state: &state, now: now)
        #expect(events.map(\.event) == [.packagesInstalled, .packagesInstallFailed])
        let failed = try #require(events.last)
        #expect(failed.level == .error)
        #expect(failed.message.hasPrefix("Failed to install the fixed packages of hotpatch hp2 (attempt 1; next on a new channel version or after "))
        #expect(failed.message.contains("the hotpatch stays applied: Failed to install release hp2: dpkg --install exited with status 1: dependency problems"))
        #expect(failed.metadata["reason"]?.contains("dependency problems") == true)
        let record = try #require(state.carriedInstalls.first { $0.release == "hp2" })
        #expect(!record.isInstalled)
        #expect(record.failure?.attempts == 1)
        #expect(record.failure?.kind == "hotpatch")

        // Same channel, before the backoff: not tried again.
        #expect(installation(calls, failing: ["hp2"]).run(plan: Self.plan(channel), channel: channel, state: &state,
                                                          now: now.addingTimeInterval(60)).isEmpty)
        #expect(calls.all.count == 2)
        // After the backoff: tried again (attempt 2).
        let retried = installation(calls, failing: ["hp2"]).run(plan: Self.plan(channel), channel: channel, state: &state,
                                                                now: now.addingTimeInterval(FailedInstall.firstBackoff + 1))
        #expect(retried.first?.message.contains("attempt 2") == true)
        // A new channel version: tried at once, and installed this time.
        let newer = Self.channel(version: 4)
        let landed = installation(calls).run(plan: Self.plan(newer), channel: newer, state: &state, now: now.addingTimeInterval(FailedInstall.firstBackoff + 2))
        #expect(landed.map(\.event) == [.packagesInstalled])
        #expect(state.carriedInstalls.allSatisfy { $0.isInstalled })
        #expect(calls.all.filter { $0.hasPrefix("hp2") }.count == 3)
    }

    @Test func statusOfFixedPackages_showsInstalledPendingAndFailed_andAFailureIsAPendingReasonNotARebootOrExposure() throws {
        let channel = Self.channel()
        var state = AgentState()
        state.activeBaseline = "B1"
        state.carriedInstalls = [
            CarriedInstall(release: "hp1", packages: [.init(name: "liba1", architecture: "amd64", version: "2.0", action: .installed,
                                                            previousVersion: "1.0")],
                           installedAt: "2026-12-01T10:00:00Z", failure: nil),
        ]
        var configuration = AgentConfiguration()
        configuration.channelDirectory = "/srv/channel"
        var facts = StatusFacts(state: state, stateProblem: nil, records: [], excludedCount: 0, lastPause: nil, channel: channel,
                                standing: nil, lastCheck: nil, plan: Self.plan(channel), bootID: "boot-1", faultReportsUnavailable: nil,
                                configuration: configuration, processWatch: "netlink", agentVersion: "0.0.1")
        var status = StatusBuilder.status(facts)
        #expect(status.fixedPackages.map(\.hotpatch) == ["hp1", "hp2"])
        #expect(status.fixedPackages.map(\.state) == [.installed, .pending])
        #expect(status.fixedPackages[0].packages == [.init(name: "liba1", architecture: "amd64", version: "2.0", action: "installed",
                                                           previousVersion: "1.0")])
        #expect(!status.reboot.required)

        facts.state.carriedInstalls.append(CarriedInstall(
            release: "hp2", packages: [], installedAt: nil,
            failure: FailedInstall(id: "hp2", kind: "hotpatch", reason: "dpkg said no", now: 1_800_000_000, attempts: 1, channelVersion: 3)))
        status = StatusBuilder.status(facts)
        #expect(status.fixedPackages[1].state == .failed)
        #expect(status.fixedPackages[1].reason?.hasSuffix("dpkg said no") == true)
        #expect(status.verdict == .hotpatchPending)
        let reason = try #require(status.reasons.first { $0.message.contains("hp2") })
        #expect(reason.message.hasPrefix("the fixed packages of hotpatch hp2 failed to install (the hotpatch stays applied"))
        let text = ControlText.status(status)
        #expect(text.contains("  packages:   hp1: installed on disk, no reboot needed — liba1 2.0 (was 1.0)"), "\(text)")
        #expect(text.contains("  packages:   hp2: install failed, the hotpatch stays applied — "), "\(text)")

        // Held: hp2 is no longer in force, its failure no longer counts; hp1's packages stay listed as installed.
        facts.plan = Self.plan(channel, held: ["hp2"])
        status = StatusBuilder.status(facts)
        #expect(status.fixedPackages.map(\.hotpatch) == ["hp1"])
        #expect(status.verdict == .upToDate)
        // Even with every level reverted, what is on disk stays listed: a revert does not downgrade.
        facts.plan = Self.plan(channel, held: ["hp1", "hp2"])
        #expect(StatusBuilder.status(facts).fixedPackages.map(\.state) == [.installed])
    }

    @Test func statusOfFixedPackages_whileDpkgInstallsARelease_saysInstallingSinceWhen_asAPendingReason() throws {
        let channel = Self.channel()
        var state = AgentState()
        state.activeBaseline = "B1"
        var configuration = AgentConfiguration()
        configuration.channelDirectory = "/srv/channel"
        var facts = StatusFacts(state: state, stateProblem: nil, records: [], excludedCount: 0, lastPause: nil, channel: channel,
                                standing: nil, lastCheck: nil, plan: Self.plan(channel), bootID: "boot-1", faultReportsUnavailable: nil,
                                configuration: configuration, processWatch: "netlink", agentVersion: "0.0.1")
        facts.installingPackages = ("hp1", now)
        let since = RFC3339.format(now.timeIntervalSince1970)
        let status = StatusBuilder.status(facts)
        #expect(status.fixedPackages.map(\.state) == [.installing, .pending])
        #expect(status.fixedPackages[0].installingSince == since)
        #expect(status.verdict == .hotpatchPending)
        #expect(status.reasons.contains { $0.message == "the fixed packages of hotpatch hp1 are being installed on disk (dpkg running since \(since))" },
                "\(status.reasons)")
        #expect(ControlText.status(status).contains("  packages:   hp1: installing on disk now (dpkg running since \(since))"))
        // Only while installing: null otherwise.
        let json = String(decoding: try ControlJSON.document(status), as: UTF8.self)
        #expect(json.contains("\"installingSince\" : \"\(since)\""), "\(json)")
        #expect(json.contains("\"installingSince\" : null"), "\(json)")
    }

    // MARK: Still vulnerable processes

    private static func object(_ path: String, _ buildID: BuildID, release: Engine.FixRelease? = nil) -> ObjectPatchReport {
        ObjectPatchReport(path: path, buildID: buildID, release: release, inspected: true)
    }

    private static func record(_ pid: Int32, _ state: ProcessEntry.State, objects: [ObjectPatchReport], reason: String? = nil,
                               unit: String? = nil) -> ProcessRecord {
        var record = ProcessRecord(identity: ProcessIdentity(pid: ProcessID(pid), startTime: 1), executable: "/usr/sbin/app\(pid)",
                                   state: state, reason: reason)
        record.objects = objects
        record.unit = unit
        record.unitRead = true
        record.command = "app\(pid)"
        record.described = true
        return record
    }

    @Test func vulnerableObjects_areTheObjectsTheLevelFixesThatDoNotRunItsFix_forRefusedProcessesOnly() {
        let fixes = Self.plan(Self.channel()).fixes
        let both = [Self.object("/usr/lib/liba.so.1", Self.libA, release: Engine.FixRelease(id: "hp1", level: 1)),
                    Self.object("/usr/lib/libb.so.1", Self.libB)]
        #expect(Self.record(1, .unpatchable, objects: both).vulnerableObjects(at: fixes).map(\.path) == ["/usr/lib/libb.so.1"])
        #expect(Self.record(2, .unpatched, objects: both).vulnerableObjects(at: fixes).map(\.path) == ["/usr/lib/libb.so.1"])
        #expect(Self.record(3, .pending, objects: both).vulnerableObjects(at: fixes).isEmpty, "being retried: hotpatch pending")
        #expect(Self.record(4, .patched, objects: both).vulnerableObjects(at: fixes).isEmpty)
        #expect(Self.record(5, .unpatchable, objects: both).vulnerableObjects(at: .none).isEmpty, "no level in force")
        // An object another baseline's level targets is not this level's business.
        let other = [Self.object("/opt/other.so", BuildID(hex: "cc03")!)]
        #expect(Self.record(6, .unpatchable, objects: other).vulnerableObjects(at: fixes).isEmpty)
    }

    @Test func vulnerableNotices_nameThePidCommandUnitObjectsAndReason_onceEach_andAgainWhenItFallsBack() throws {
        var ledger = ProcessLedger()
        let fixes = Self.plan(Self.channel()).fixes
        let report = HostProcessReport(
            match: ProcessMatch(process: ProcessIdentity(pid: ProcessID(70), startTime: 5),
                                objects: [LoadedObject(path: "/usr/lib/libb.so.1", isDeleted: true, buildID: Self.libB,
                                                       loadBias: 0x7f00_0000_0000, mappings: [], readablePath: "/proc/70/map_files/x")]),
            executable: "/usr/sbin/nginx",
            result: .reconciled(ProcessPatchReport(pid: ProcessID(70), startTime: 5, objectPath: "/usr/lib/libb.so.1",
                                                   outcome: .unpatchable(.tracedBy(tracer: ThreadID(9))), pauseMicroseconds: nil,
                                                   totalMicroseconds: 1, threadCount: 1, evacuatedThreads: 0, injectedSystemCalls: 0,
                                                   objects: [ObjectPatchReport(path: "/usr/lib/libb.so.1", buildID: Self.libB)])))
        _ = ledger.take([report], fullPass: true, desired: fixes.release, healthWindow: 60, now: now)
        var described: [ProcessID] = []
        ledger.describeNew { pid in
            described.append(pid)
            return "nginx"
        }
        ledger.describeNew { pid in
            described.append(pid)
            return nil
        }
        #expect(described == [ProcessID(70)], "a process is described once")
        var unitsRead: [ProcessIdentity] = []
        ledger.readUnits(of: { !$0.vulnerableObjects(at: fixes).isEmpty }) { identity in
            unitsRead.append(identity)
            return "nginx.service"
        }
        ledger.readUnits(of: { _ in true }) { identity in
            unitsRead.append(identity)
            return nil
        }
        #expect(unitsRead == [ProcessIdentity(pid: ProcessID(70), startTime: 5)], "a unit is read once, by the process's identity")

        let events = ledger.vulnerableNotices(at: fixes)
        let event = try #require(events.first)
        #expect(events.count == 1)
        #expect(event.event == .processVulnerable)
        #expect(!event.inHistory, "a local user can make processes unpatchable at will: journal only")
        #expect(event.level == .warning)
        #expect(event.message == "PID 70 (nginx, unit nginx.service) still runs vulnerable code: /usr/lib/libb.so.1 without the fix of hotpatch hp2 (traced by PID 9); it stays exposed until it is patched, restarted (systemctl restart nginx.service) or gone")
        #expect(event.metadata["target.pid"] == "70")
        #expect(event.metadata["target.comm"] == "nginx")
        #expect(event.metadata["target.unit"] == "nginx.service")
        #expect(event.metadata["target.objects"] == "/usr/lib/libb.so.1")
        #expect(event.metadata["reason"] == "traced by PID 9")
        #expect(event.metadata["hotpatch.id"] == "hp2")
        #expect(ledger.vulnerableNotices(at: fixes).isEmpty, "said once")

        let entry = try #require(ledger.records[ProcessID(70)]).entry(at: fixes)
        #expect(entry.vulnerable && entry.unit == "nginx.service")
        #expect(entry.objects.map(\.vulnerable) == [true])
        let table = ControlText.processes([entry])
        #expect(table.contains("\n    still running vulnerable code: /usr/lib/libb.so.1 (unit nginx.service)"), "\(table)")
        #expect(table.hasSuffix("1 process(es) still run vulnerable code: each stays exposed until the agent patches it, it is restarted (it then loads the fixed file, once that is on disk) or it ends. Units to restart: nginx.service (systemctl restart UNIT)."), "\(table)")

        // No level in force any more (unenrolled): nothing to say, and the notice is forgotten.
        #expect(ledger.vulnerableNotices(at: .none).isEmpty)
        #expect(ledger.vulnerableNotices(at: fixes).count == 1, "named again when it falls back")
    }

    /// A report of process `pid` (started at 5) that maps libb, reconciled with `outcome`.
    private static func libBReport(_ pid: Int32, _ outcome: PatchOutcome, executable: String = "/usr/sbin/nginx") -> HostProcessReport {
        HostProcessReport(
            match: ProcessMatch(process: ProcessIdentity(pid: ProcessID(pid), startTime: 5),
                                objects: [LoadedObject(path: "/usr/lib/libb.so.1", isDeleted: false, buildID: libB,
                                                       loadBias: 0x7f00_0000_0000, mappings: [], readablePath: "/usr/lib/libb.so.1")]),
            executable: executable,
            result: .reconciled(ProcessPatchReport(pid: ProcessID(pid), startTime: 5, objectPath: "/usr/lib/libb.so.1",
                                                   outcome: outcome, pauseMicroseconds: nil, totalMicroseconds: 1, threadCount: 1,
                                                   evacuatedThreads: 0, injectedSystemCalls: 0,
                                                   objects: [ObjectPatchReport(path: "/usr/lib/libb.so.1", buildID: libB)])))
    }

    @Test func vulnerableNotices_lookOnlyAtRecordsChangedSinceTheLast_yetNameAProcessWhoseReasonChanged() throws {
        var ledger = ProcessLedger()
        let fixes = Self.plan(Self.channel()).fixes
        func report(_ pid: Int32, tracer: Int32) -> HostProcessReport {
            Self.libBReport(pid, .unpatchable(.tracedBy(tracer: ThreadID(tracer))))
        }
        _ = ledger.take((71...73).map { report($0, tracer: 9) }, fullPass: true, desired: fixes.release, healthWindow: 60, now: now)
        #expect(ledger.vulnerableNotices(at: fixes).compactMap { $0.metadata["target.pid"] } == ["71", "72", "73"])
        // One process reconciled again (an exec's pass over its pid): the others are not said again.
        _ = ledger.take([report(72, tracer: 9)], fullPass: false, desired: fixes.release, healthWindow: 60, now: now)
        #expect(ledger.vulnerableNotices(at: fixes).isEmpty)
        // Its reason changed: named again, alone.
        _ = ledger.take([report(72, tracer: 10)], fullPass: false, desired: fixes.release, healthWindow: 60, now: now)
        let again = ledger.vulnerableNotices(at: fixes)
        #expect(again.compactMap { $0.metadata["target.pid"] } == ["72"])
        #expect(again.first?.metadata["reason"] == "traced by PID 10")
    }

    @Test func status_ofAVulnerableProcess_isExposed_namingItsObjectsAndUnit_untilItIsGone() {
        let channel = Self.channel()
        var configuration = AgentConfiguration()
        configuration.channelDirectory = "/srv/channel"
        let vulnerable = Self.record(80, .unpatchable, objects: [Self.object("/usr/lib/libb.so.1", Self.libB)],
                                     reason: "seccomp filter would kill on mmap; not injected", unit: "cups.service")
        var state = AgentState()
        state.activeBaseline = "B1"
        var facts = StatusFacts(state: state, stateProblem: nil, records: [vulnerable], excludedCount: 0, lastPause: nil,
                                channel: channel, standing: nil, lastCheck: nil, plan: Self.plan(channel), bootID: "boot-1",
                                faultReportsUnavailable: nil, configuration: configuration, processWatch: "netlink", agentVersion: "0.0.1")
        facts.state.carriedInstalls = ["hp1", "hp2"].map {
            CarriedInstall(release: $0, packages: [], installedAt: "2026-12-01T10:00:00Z", failure: nil)
        }
        let status = StatusBuilder.status(facts)
        #expect(status.verdict == .exposed)
        #expect(status.processes.vulnerable == 1)
        #expect(status.reasons.contains(.init(verdict: .exposed,
                                              message: "PID 80 (/usr/sbin/app80) cannot be patched: seccomp filter would kill on mmap; not injected; it still runs vulnerable code: /usr/lib/libb.so.1 (unit cups.service)")),
                "\(status.reasons)")
        #expect(ControlText.status(status).contains("1 unpatchable (1 still running vulnerable code: agentctl processes)"))
        #expect(StatusBuilder.summary(status).hasSuffix("1 unpatchable, 1 still vulnerable"))

        facts.records = []
        let gone = StatusBuilder.status(facts)
        #expect(gone.verdict == .upToDate, "\(gone.reasons)")
        #expect(gone.processes.vulnerable == 0)
    }

    // MARK: The systemd unit

    @Test(arguments: [
        ("0::/system.slice/nginx.service\n", "nginx.service"),
        ("0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope"),
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service\n", "foo.service (user 1000)"),
        // The user's delegated subtree: names chosen by the user never read as a system unit.
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/sshd.service\n", "sshd.service (user 1000)"),
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/user@0.service/sshd.service\n", "user@0.service (user 1000)"),
        ("0::/user.slice/user-1000.slice/user@1000.service/init.scope\n", "init.scope (user 1000)"),
        ("0::/system.slice/docker-4f1c.scope/system.slice/sshd.service\n", "docker-4f1c.scope"),
        ("0::/system.slice/\u{1b}[2Jx.service\n", "\u{1b}[2Jx.service"),
        ("0::/system.slice/docker-4f1c.scope/inner\n", "docker-4f1c.scope"),
        ("0::/init.scope\n", "init.scope"),
        ("12:pids:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n0::/system.slice/cron.service\n", "cron.service"),
        ("9:name=systemd:/system.slice/ssh.service\n4:memory:/x\n0::/\n", "ssh.service"),
        ("9:name=systemd:/\n4:memory:/process_api/38d6\n0::/\n", nil),
        ("0::/\n", nil),
        ("", nil),
    ] as [(String, String?)])
    func unit_isTheFirstServiceOrScopeBelowTheSlices_andAUserManagersUnitNamesItsOwner(cgroup: String, unit: String?) {
        #expect(SystemdUnit.unit(cgroup: cgroup) == unit)
    }

    @Test func restartAdvice_isSystemctlForASystemServiceOnly_andRestartTheProgramForAScopeOrAUserUnit() {
        #expect(ControlText.restartAdvice(unit: "nginx.service") == "systemctl restart nginx.service")
        #expect(ControlText.restartAdvice(unit: "sshd.service (user 1000)") == "restart the program")
        #expect(ControlText.restartAdvice(unit: "session-3.scope") == "restart the program")
        #expect(ControlText.restartAdvice(unit: nil) == "restart the program")
        var record = Self.record(71, .unpatchable, objects: [Self.object("/usr/lib/libb.so.1", Self.libB)], reason: "refused",
                                 unit: "sshd.service (user 1000)")
        record.command = "sshd"
        var entry = record.entry(at: Self.plan(Self.channel()).fixes)
        let table = ControlText.processes([entry])
        #expect(!table.contains("systemctl restart"), "\(table)")
        #expect(!table.contains("Units to restart"), "\(table)")
        #expect(table.contains("(unit sshd.service (user 1000))"), "\(table)")
        #expect(table.hasSuffix("Not in a system service (a scope, a user's unit or none): restart the program of PID 71."), "\(table)")
        entry.unit = "session-3.scope"
        #expect(!ControlText.processes([entry]).contains("systemctl"))
    }

    @Test func controlText_escapesControlCharactersOfNamesFromProcessesAndTheHost() {
        #expect(ControlText.printable("a\u{1b}[2Jb\u{7f}\u{9b}c\n\\é\u{2028}") == "a\\x1b[2Jb\\x7f\\x9bc\\x0a\\\\é\\u{2028}")
        let record = Self.record(72, .unpatchable, objects: [Self.object("/usr/lib/libb.so.1\u{1b}]0;x", Self.libB)],
                                 reason: "refused \u{1b}[31m", unit: "\u{1b}[2Jx.service")
        var entry = record.entry(at: Self.plan(Self.channel()).fixes)
        entry.executable = "/usr/bin/app\u{1b}[1A"
        let table = ControlText.processes([entry])
        #expect(!table.unicodeScalars.contains("\u{1b}"), "\(table)")
        #expect(table.contains("/usr/bin/app\\x1b[1A"), "\(table)")
        #expect(table.contains("(unit \\x1b[2Jx.service)"), "\(table)")
        let history = ControlText.history([HistoryEntry(time: "t", event: "e", release: nil, message: "PID 1 (x\u{1b}[2J)")])
        #expect(!history.unicodeScalars.contains("\u{1b}"), "\(history)")
    }

    @Test func describeNew_takesTheUnitFromACgroupTheScanRead_andReadUnitsReadsOnlyTheOthersItShows() {
        var ledger = ProcessLedger()
        let fixes = Self.plan(Self.channel()).fixes
        func report(_ pid: Int32, _ outcome: PatchOutcome) -> HostProcessReport {
            Self.libBReport(pid, outcome, executable: "/usr/sbin/app\(pid)")
        }
        // 80 and 81 are refused (they run vulnerable code), 82 is not; the scan read 80's cgroup.
        let traced = PatchOutcome.unpatchable(.tracedBy(tracer: ThreadID(9)))
        _ = ledger.take([report(80, traced), report(81, traced), report(82, .alreadyApplied)], fullPass: true,
                        desired: fixes.release, healthWindow: 60, now: now)
        ledger.describeNew(cgroups: [ProcessID(80): "0::/system.slice/a.service\n"]) { _ in "app" }
        #expect(ledger.records[ProcessID(80)]?.unit == "a.service")

        var read: [ProcessID] = []
        ledger.readUnits(of: { !$0.vulnerableObjects(at: fixes).isEmpty }) { identity in
            read.append(identity.pid)
            return "b.service"
        }
        #expect(read == [ProcessID(81)], "80's unit came with the scan; 82 runs no vulnerable code, so nothing shows it")
        #expect(ledger.records[ProcessID(81)]?.unit == "b.service")
        ledger.readUnits(of: { _ in true }) { identity in
            read.append(identity.pid)
            return nil
        }
        #expect(read == [ProcessID(81), ProcessID(82)], "each unit is read once")
        #expect(ledger.records[ProcessID(82)]?.unit == nil)
    }

    @Test func unit_ofThisProcess_matchesItsOwnCgroupFile() throws {
        let text = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        #expect(SystemdUnit.unit(of: try ProcFS.identity(of: ProcessID(getpid()))) == SystemdUnit.unit(cgroup: text))
        #expect(SystemdUnit.unit(of: ProcessIdentity(pid: ProcessID(Int32.max), startTime: 1)) == nil, "an ended process has none")
        #expect(SystemdUnit.command(of: ProcessID(getpid())) != nil)
    }
}
