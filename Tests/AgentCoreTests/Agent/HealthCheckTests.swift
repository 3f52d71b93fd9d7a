import Artifact
import Engine
import Foundation
import Glibc
import LinuxSystem
import Testing
@testable import AgentCore

/// Each rule of the crash health check, on values alone.
@Suite struct HealthCheckTests {
    private static let root = ProcessCredentials(real: 0, effective: 0, saved: 0, fileSystem: 0)
    private static let pid = ProcessID(4400)
    private static let code = PatchedCode(
        hotpatchID: "hp1",
        regions: [
            .init(label: "function parse_length", range: 0x5000..<0x5040),
            .init(label: "patch image fix.o", range: 0x7f00_0000_0000..<0x7f00_0000_2000),
        ],
        imageNames: ["fix.o", "memfd:hotpatch:fix.o"])

    private func death(signal: Int32? = SIGSEGV, age: Double? = 2, credentials: ProcessCredentials? = root) -> HealthCheck.Death {
        HealthCheck.Death(pid: Self.pid, signal: signal, hotpatchID: "hp1", secondsSincePatch: age,
                          credentials: credentials, code: Self.code, earliestReport: 100_000_000)
    }

    private func report(thread: Int32 = 4400, process: Int32? = 4400, ip: UInt64 = 0x5004, time: UInt64 = 200_000_000,
                        mapping: String? = nil) -> KernelFaultReport {
        KernelFaultReport(sequence: 7, timestampMicroseconds: time, command: "victim", threadID: ThreadID(thread), kind: "trap invalid opcode",
                          instructionPointer: ip, mapping: mapping.map { .init(name: $0, start: 0x1000, size: 0x1000) },
                          processID: process.map(ProcessID.init))
    }

    private func counts(_ judgement: HealthCheck.Judgement?) -> Bool {
        if case .counts = judgement { true } else { false }
    }

    private func ignoredReason(_ judgement: HealthCheck.Judgement?) -> String? {
        if case let .ignored(reason) = judgement { reason } else { nil }
    }

    // Rule 0: only crash-like deaths of processes we patched, within the window, are judged at all.
    @Test func normalExitsOtherSignalsAndDeathsOutsideTheWindow_areNotJudged() {
        let witness = HealthCheck.KernelWitness.reports([report()])
        for signal in [nil, SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGUSR1] as [Int32?] {
            #expect(HealthCheck.judge(death(signal: signal), window: 60, witness: witness) == nil)
        }
        #expect(HealthCheck.judge(death(age: 61), window: 60, witness: witness) == nil)
        #expect(HealthCheck.judge(death(age: nil), window: 60, witness: witness) == nil)
    }

    // Rule 1: only the four fault signals can count.
    @Test func abortSysAndTrap_areLoggedNeverCounted_evenWithAKernelReport() {
        for signal in [SIGABRT, SIGSYS, SIGTRAP] {
            let judgement = HealthCheck.judge(death(signal: signal), window: 60, witness: .reports([report()]))
            #expect(ignoredReason(judgement)?.contains("not a fault") == true, "\(signal): \(String(describing: judgement))")
        }
    }

    // Rule 3: a process any unprivileged user could signal or trace proves nothing.
    @Test func aProcessWithAnyNonRootUid_isIgnored_evenWithARealFaultInThePatch() {
        let users = [
            ProcessCredentials(real: 65534, effective: 65534, saved: 65534, fileSystem: 65534),
            // A set-user-ID root program started by a user keeps the user's real uid.
            ProcessCredentials(real: 1000, effective: 0, saved: 0, fileSystem: 0),
            ProcessCredentials(real: 0, effective: 0, saved: 1000, fileSystem: 0),
            ProcessCredentials(real: 0, effective: 1000, saved: 0, fileSystem: 0),
            ProcessCredentials(real: 0, effective: 0, saved: 0, fileSystem: 1000),
        ]
        for credentials in users {
            for witness in [HealthCheck.KernelWitness.reports([report()]), .unavailable(reason: "no /dev/kmsg")] {
                let judgement = HealthCheck.judge(death(credentials: credentials), window: 60, witness: witness)
                #expect(ignoredReason(judgement)?.contains("uids \(credentials)") == true, "\(credentials)")
            }
        }
        #expect(ignoredReason(HealthCheck.judge(death(credentials: nil), window: 60, witness: .reports([report()]))) != nil)
    }

    // Rule 4: where the kernel log is read, only a reported fault inside the hotpatch's code counts.
    @Test func rootProcess_withAReportedFaultInAReplacedFunctionOrTheImage_counts() {
        for signal in [SIGSEGV, SIGBUS, SIGILL, SIGFPE] {
            #expect(counts(HealthCheck.judge(death(signal: signal), window: 60, witness: .reports([report()]))))
        }
        let inImage = report(ip: 0x7f00_0000_1000)
        #expect(counts(HealthCheck.judge(death(), window: 60, witness: .reports([inImage]))))
        // Named by the kernel as the image although no range was recorded for it.
        let byName = report(ip: 0x9999_0000, mapping: "memfd:hotpatch:fix.o")
        #expect(counts(HealthCheck.judge(death(), window: 60, witness: .reports([byName]))))
    }

    @Test func rootProcess_withoutAnyKernelReport_isIgnored_asASentSignal() {
        let judgement = HealthCheck.judge(death(), window: 60, witness: .reports([]))
        #expect(ignoredReason(judgement)?.contains("reported no fault") == true)
    }

    @Test func rootProcess_whoseReportedFaultLiesOutsideTheHotpatch_isIgnored() {
        let elsewhere = report(ip: 0x6000, mapping: "libc.so.6")
        let judgement = HealthCheck.judge(death(), window: 60, witness: .reports([elsewhere]))
        #expect(ignoredReason(judgement)?.contains("outside the hotpatch's code") == true)
    }

    @Test func reportsOfOtherProcessesOrFromBeforeItStarted_areNotThisDeathsWitness() {
        // Another process's thread, still present when read, faulting at the same address.
        let otherProcess = report(thread: 5000, process: 5000)
        #expect(ignoredReason(HealthCheck.judge(death(), window: 60, witness: .reports([otherProcess]))) != nil)
        // Logged before it started (a previous process with the same pid).
        let old = report(time: 99_999_999)
        #expect(ignoredReason(HealthCheck.judge(death(), window: 60, witness: .reports([old]))) != nil)
        // A thread of this process, named by its thread group.
        let worker = report(thread: 4405, process: 4400)
        #expect(counts(HealthCheck.judge(death(), window: 60, witness: .reports([worker]))))
        // A thread gone before it could be looked up counts only inside this process's patched code.
        let goneInside = report(thread: 4406, process: nil)
        #expect(counts(HealthCheck.judge(death(), window: 60, witness: .reports([goneInside]))))
        let goneOutside = report(thread: 4406, process: nil, ip: 0x6000)
        #expect(ignoredReason(HealthCheck.judge(death(), window: 60, witness: .reports([goneOutside])))?.contains("reported no fault") == true)
    }

    // Without the kernel log, rules 1–3 decide: a root-only process's fault signal counts, unconfirmed.
    @Test func withoutKernelReports_aFaultSignalInARootOnlyProcessCounts_andSaysItIsUnconfirmed() {
        let judgement = HealthCheck.judge(death(), window: 60, witness: .unavailable(reason: "no /dev/kmsg"))
        guard case let .counts(reason) = judgement else {
            Issue.record("\(String(describing: judgement))")
            return
        }
        #expect(reason.contains("not confirmed") && reason.contains("no /dev/kmsg"))
    }

    @Test func earliestReport_isNoLaterThanTheProcessStartOnTheLogClock() throws {
        let start = try ProcFS.identity(of: ProcessID(getpid())).startTime
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nowMicroseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        let earliest = HealthCheck.earliestReport(ofProcessStartedAt: start)
        #expect(earliest <= nowMicroseconds)
        #expect(HealthCheck.earliestReport(ofProcessStartedAt: 0) == 0)
        // A later start gives a later bound, tick for tick.
        let ticks = UInt64(sysconf(Int32(_SC_CLK_TCK)))
        let later = HealthCheck.earliestReport(ofProcessStartedAt: start + 10 * ticks)
        #expect(later == 0 || later - earliest >= 9_000_000)
    }

    @Test func credentials_areReadFromTheProcessStatus() {
        // The Uid: line itself is parsed (and its malformed forms refused) by ProcessStatus: see EngineTests.
        #expect(ProcessCredentials.read(ProcessID(getpid())) == ProcessCredentials(
            real: getuid(), effective: geteuid(), saved: getuid(), fileSystem: geteuid()))
    }

    @Test func aProcessOnceSeenUnprivileged_staysSo() {
        var record = ProcessRecord(identity: ProcessIdentity(pid: Self.pid, startTime: 1), executable: "/usr/sbin/d",
                                   state: .patched)
        record.observe(Self.root)
        #expect(record.credentials == Self.root)
        let dropped = ProcessCredentials(real: 65534, effective: 65534, saved: 65534, fileSystem: 65534)
        record.observe(dropped)
        record.observe(Self.root)
        record.observe(nil)
        #expect(record.credentials == dropped)
    }

    @Test func watchedProcesses_areKeptWhileTheirWindowIsOpen_andForgottenAfter() {
        func patched(_ pid: Int32, at time: Date) -> ProcessRecord {
            var record = ProcessRecord(identity: ProcessIdentity(pid: ProcessID(pid), startTime: 1), executable: "/v", state: .patched)
            record.hotpatch = "hp1"
            record.patchedAt = time
            return record
        }
        let start = Date(timeIntervalSince1970: 1_000_000)
        var watch = HealthWatch()
        watch.watch(patched(1, at: start), window: 60, now: start)
        watch.watch(patched(2, at: start.addingTimeInterval(30)), window: 60, now: start.addingTimeInterval(30))
        #expect(Set(watch.watched.keys) == [ProcessID(1), ProcessID(2)])
        watch.watch(patched(3, at: start.addingTimeInterval(61)), window: 60, now: start.addingTimeInterval(61))
        #expect(Set(watch.watched.keys) == [ProcessID(2), ProcessID(3)], "PID 1's window closed")
        // Patched again (a newer level): the window starts over.
        watch.watch(patched(2, at: start.addingTimeInterval(100)), window: 60, now: start.addingTimeInterval(100))
        #expect(watch.watched[ProcessID(2)]?.patchedAt == start.addingTimeInterval(100))
    }

    @Test func patchedCode_coversEveryReplacedFunctionAndTheImageMappings() throws {
        let buildID = try #require(BuildID(hex: "a9e0c7a1d5e54b4f8f2a0a11c0ffee00"))
        let hotpatch = Hotpatch(id: "hp1", baseline: "b", level: 1, targets: [
            HotpatchTarget(buildID: buildID, pathHint: "/usr/bin/v", patchObjectPath: "/var/lib/store/objects/fix.o",
                           redirections: [FunctionRedirection(symbol: "f", offset: 0x1100, size: 0x40, sha256: "", replacement: "g"),
                                          FunctionRedirection(symbol: "h", offset: 0x1200, size: 0x10, sha256: "", replacement: "i")],
                           references: []),
        ])
        func mapping(_ start: UInt64, _ end: UInt64, _ path: String) -> MemoryMapping {
            MemoryMapping(start: start, end: end, isReadable: true, isWritable: false, isExecutable: true, isShared: false,
                          offset: 0, deviceMajor: 8, deviceMinor: 1, inode: 7, path: path, isDeleted: false)
        }
        let code = PatchedCode.locate(hotpatch, buildID: buildID, loadBias: 0x5555_0000_0000, mappings: [
            mapping(0x5555_0000_0000, 0x5555_0000_3000, "/usr/bin/v"),
            mapping(0x7f00_0000_0000, 0x7f00_0000_1000, "/memfd:hotpatch:fix.o"),
            mapping(0x7f00_0000_1000, 0x7f00_0000_2000, "/var/lib/store/objects/fix.o"),
            mapping(0x7f00_0001_0000, 0x7f00_0001_1000, "/usr/lib/libc.so.6"),
        ])
        #expect(code.region(containing: 0x5555_0000_1100)?.label == "function f")
        #expect(code.region(containing: 0x5555_0000_113f)?.label == "function f")
        #expect(code.region(containing: 0x5555_0000_1140) == nil)
        #expect(code.region(containing: 0x5555_0000_1205)?.label == "function h")
        #expect(code.region(containing: 0x7f00_0000_0800)?.label == "patch image fix.o")
        #expect(code.region(containing: 0x7f00_0000_1800)?.label == "patch image fix.o")
        #expect(code.region(containing: 0x7f00_0001_0000) == nil)
        #expect(code.imageNames == ["fix.o", "memfd:hotpatch:fix.o"])
        // Another object of the same process (other build-id) adds nothing for this target.
        #expect(PatchedCode.locate(hotpatch, buildID: BuildID(bytes: [1]), loadBias: 0, mappings: []).regions.isEmpty)
        #expect(code.merged(with: PatchedCode(hotpatchID: "hp2")).hotpatchID == "hp2")
        #expect(code.merged(with: code) == code)
    }

    @Test func ignoredDeathWarnings_areLimitedPerInterval_andTheNextSaysHowManyWereHeld() {
        var limiter = HealthWarningLimiter()
        let start = Date(timeIntervalSince1970: 1_000_000)
        for index in 0..<10 { #expect(limiter.admit(now: start.addingTimeInterval(Double(index))) == (true, 0)) }
        for index in 10..<25 { #expect(limiter.admit(now: start.addingTimeInterval(Double(index))).log == false) }
        #expect(limiter.admit(now: start.addingTimeInterval(60)) == (true, 15))
        #expect(limiter.admit(now: start.addingTimeInterval(61)) == (true, 0))
    }
}
