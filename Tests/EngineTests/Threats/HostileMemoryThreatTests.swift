import Architecture
import Artifact
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

extension LivePatchTests {
    /// A process whose memory lies to the Engine: the words it reads to bind a patch (the GOT slot
    /// of an indirect function, the dynamic linker's list of objects, libgcc_s's list of unwind
    /// tables) are overwritten before the patch, as the process's own code or a local user who
    /// owns it (and so may write its memory) could do. The Engine must end each read in bounded
    /// time, refuse with the word named (or report busy while a lock is held), never call or
    /// follow what the process planted, and leave the process running as it was.
    @Suite struct HostileMemoryThreatTests {
        /// Every word the test planted, to be put back.
        private struct Planted {
            let address: UInt64
            let original: [UInt8]
        }

        /// The object of `pid` whose file name starts with `prefix`.
        private static func object(_ prefix: String, in pid: Int32, cache: ObjectCache) throws -> LoadedObject {
            let mappings = try ProcFS.maps(of: ProcessID(pid))
            let objects = LoadedObjects.of(pid: ProcessID(pid), mappings: mappings, cache: cache)
            return try #require(objects.first { ($0.path as NSString).lastPathComponent.hasPrefix(prefix) },
                                "process \(pid) maps no \(prefix)*")
        }

        /// Writes `word` at `address` in `pid` and returns what was there.
        private static func plant(_ word: UInt64, bytes: Int = 8, at address: UInt64, in pid: Int32) throws -> Planted {
            let memory = try ProcessMemory(pid: ProcessID(pid))
            let original = try memory.read(at: address, count: bytes)
            var written: [UInt8] = []
            written.appendLittleEndian(word)
            try memory.write(Array(written.prefix(bytes)), at: address)
            return Planted(address: address, original: original)
        }

        private static func restore(_ planted: Planted, in pid: Int32) throws {
            try ProcessMemory(pid: ProcessID(pid)).write(planted.original, at: planted.address)
        }

        /// Reconciles once (no retry of busy), on the tracer thread, and says how long it took.
        private static func reconcileOnce(_ process: RunningProcess, _ target: HotpatchTarget) throws -> (ProcessPatchReport, Duration) {
            let started = ContinuousClock.now
            let report = try Live.reconcile(process, desired: target, known: [target], retries: 0)
            return (report, ContinuousClock.now - started)
        }

        /// Nothing of the patch is in the process: no image mapped, the target's entries as they were.
        private static func expectUntouched(_ process: RunningProcess, _ target: HotpatchTarget, patch: String,
                                            entries: [UInt64: [UInt8]], _ what: String) throws {
            #expect(process.isAlive, "\(what): the process died")
            #expect(Live.mapsLines(process.pid, containing: (patch as NSString).lastPathComponent).isEmpty, "\(what): a patch image is left mapped")
            #expect(Live.mapsLines(process.pid, containing: "hotpatch:").isEmpty, "\(what): a patch image is left mapped")
            #expect(try Self.entryBytes(process, target) == entries, "\(what): a function entry changed")
        }

        /// The first bytes of each redirected function, by address.
        private static func entryBytes(_ process: RunningProcess, _ target: HotpatchTarget) throws -> [UInt64: [UInt8]] {
            let match = try Live.match(process.pid, target.buildID)
            let memory = try ProcessMemory(pid: ProcessID(process.pid))
            var entries: [UInt64: [UInt8]] = [:]
            for redirection in target.redirections {
                let address = match.object.loadBias &+ redirection.offset
                entries[address] = try memory.read(at: address, count: 16)
            }
            return entries
        }

        // MARK: Indirect functions

        @Test func anIndirectFunctionsSlotPointingAnywhereButItsObjectsCode_isRefusedNamingTheSlot_neverCalled() throws {
            let (program, patch) = (try BindingFixtures.indirectCalls(), try BindingFixtures.callingPatch("patch_indirect_calls.c"))
            let replacements = [("tick", "tick_fixed"), ("format_record", "format_record_fixed")]
            let target = try BindingFixtures.plan(program.unstripped, patch: patch, replacements)
            let process = try RunningProcess(program.stripped)
            defer { process.stop() }
            // What its dynamic linker resolves for strpbrk (dlsym), the truth to bind to at the end.
            let resolved = BindingFixtures.addresses(in: try process.waitForLine(timeout: 10) { $0.hasPrefix("resolved ") })
            _ = try process.waitForLine(timeout: 10) { $0 == "ready" }
            let entries = try Self.entryBytes(process, target)

            // strpbrk: the patch calls it, the program never does, so libc's own IRELATIVE slot is
            // the only source, and nothing the program runs calls through it meanwhile.
            let cache = ObjectCache()
            let libc = try Self.object("libc.so", in: process.pid, cache: cache)
            let resolver = try #require(try cache.exports(of: libc)["strpbrk"]?.first { $0.kind == .gnuIndirectFunction })
            let slots = try cache.linkFacts(of: libc).indirectSlots[resolver.value] ?? []
            try #require(!slots.isEmpty, "libc has no IRELATIVE slot for strpbrk's resolver")
            let slot = libc.loadBias &+ slots[0]
            let programCode = try #require(try Self.object((program.stripped as NSString).lastPathComponent, in: process.pid, cache: cache)
                .mappings.first { $0.isExecutable }).start
            let hostile: [(what: String, word: UInt64)] = [
                ("an unmapped address", 0x4141_4141_4141_4141),
                ("libc's own data (the slot itself)", slot),
                ("code of another object (the program's)", programCode),
            ]
            for (what, word) in hostile {
                let planted = try Self.plant(word, at: slot, in: process.pid)
                let (report, took) = try Self.reconcileOnce(process, target)
                try Self.restore(planted, in: process.pid)
                guard case let .unpatchable(.patchObjectRejected(detail)) = report.outcome else {
                    Issue.record("\(what): expected a refusal, got \(report.outcome)")
                    continue
                }
                #expect(detail.contains("strpbrk@GLIBC_2.2.5 is a GNU indirect function in /"), "\(what): \(detail)")
                #expect(detail.contains("the GOT slot of its IRELATIVE relocation at 0x\(String(slot, radix: 16)) holds 0x\(String(word, radix: 16)), which is not code of that object"),
                        "\(what): \(detail)")
                #expect(report.injectedSystemCalls == 0, "\(what): refused before anything was injected")
                try Self.expectUntouched(process, target, patch: patch, entries: entries, what)
                print("IRELATIVE slot holding \(what): refused in \(took)")
            }

            // The same process, its slot as its dynamic linker wrote it: patched, strpbrk bound right.
            #expect(try Live.reconcile(process, desired: target, known: [target]).outcome == .applied)
            let bound = BindingFixtures.addresses(in: try process.waitForLine(timeout: 10) { $0.hasPrefix("patch ") })
            #expect(bound["strpbrk"] == resolved["strpbrk"], "bound \(bound["strpbrk"] ?? "nothing"), dlsym says \(resolved["strpbrk"] ?? "?")")
            #expect(try Live.reconcile(process, desired: nil, known: [target]).outcome == .reverted)
            _ = try process.waitForLine { $0.hasSuffix(" original") }
        }

        // MARK: The dynamic linker's list of objects

        @Test(arguments: [
            ("cycle", "loops back to 0x"),
            ("long", "is longer than 65536 objects, which no dynamic linker makes"),
            ("unmapped", "the dynamic linker's list of objects cannot be read at 0x"),
        ])
        func aDynamicLinkerListThatLoopsRunsOnOrPointsNowhere_endsTheWalkWithTheReason(mode: String, reason: String) throws {
            let program = try BindingFixtures.targetState()
            let patch = try Live.builder.patchObject("patch_target_state.c")
            let target = try BindingFixtures.plan(program, patch: patch, [("next_ticket", "next_ticket_fixed"), ("step", "step_fixed")],
                                                  references: ["counter.0", "limit", "scale", "exe_tls_gd", "exe_tls_ie"])
            let hostile = try Live.builder.build("hostile_link_map.c", flags: ["-O2", "-shared", "-fPIC"], suffix: ".so")
            let process = try RunningProcess(program, [], environment: ["LD_PRELOAD": hostile, "HOSTILE_LINK_MAP": mode])
            defer { process.stop() }
            _ = try process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
            let entries = try Self.entryBytes(process, target)

            let (report, took) = try Self.reconcileOnce(process, target)
            guard case let .unpatchable(.patchObjectRejected(detail)) = report.outcome else {
                Issue.record("\(mode): expected a refusal, got \(report.outcome)")
                return
            }
            #expect(detail.contains("the thread-locals of /"), "\(mode): \(detail)")
            #expect(detail.contains(reason), "\(mode): \(detail)")
            #expect(report.injectedSystemCalls == 0)
            // A hang guard, not a timing goal: 65,536 reads of the process take milliseconds.
            #expect(took < .seconds(10), "\(mode): the walk took \(took)")
            print("_r_debug list \(mode): refused in \(took)")
            try Self.expectUntouched(process, target, patch: patch, entries: entries, mode)
            // The program's own lookups never used that list: it runs on, its checks intact.
            let line = try process.waitForLine { $0.hasPrefix("worker=") }
            #expect(!line.contains("MISMATCH"), "\(line)")
        }

        // MARK: libgcc_s's list of unwind tables

        /// The C++ thrower (its exceptions pass through `through`) running and catching, and its
        /// fix, planned.
        private static func startThrower() throws -> (process: RunningProcess, patch: String, target: HotpatchTarget) {
            let program = try Live.builder.build("cxx_thrower.cpp", flags: ["-O1", "-rdynamic", "-Wl,--no-as-needed", "-lstdc++"])
            let patch = try Live.builder.patchObject("patch_cxx_thrower.cpp")
            let target = try BindingFixtures.plan(program, patch: patch, [("through", "through_fixed")])
            let process = try RunningProcess(program, [])
            do {
                _ = try process.waitForLine(timeout: 10) { $0 == "caught 1" }
            } catch {
                process.stop()
                throw error
            }
            return (process, patch, target)
        }

        /// Where the unwinder's lock, list head and flag are in `pid`.
        private static func unwinder(in pid: Int32) throws -> (lock: UInt64, head: UInt64, flag: UInt64) {
            let cache = ObjectCache()
            let libgcc = try Self.object("libgcc_s.so", in: pid, cache: cache)
            let layout = try #require(cache.unwinderLayout(of: libgcc))
            return (libgcc.loadBias &+ layout.lock, libgcc.loadBias &+ layout.listHead, libgcc.loadBias &+ layout.anyRegisteredFlag)
        }

        // MARK: Stacks

        @Test func aWordInsideAPatchWindowKeptOnARunningThreadsStack_isBusyWithinTheRestops_andThePatchGoesInOnceItIsGone() throws {
            let target = try Live.victimHotpatches().level1.targets[0]
            let victim = try Live.startVictim(["--threads", "1", "--planted-return"])
            defer { victim.stop() }
            let plantedLine = try victim.line { $0.hasPrefix("planted tid=") }
            let plantedTID = try #require(Int32(plantedLine.dropFirst("planted tid=".count)))
            let entries = try Self.entryBytes(victim, target)
            // The thread never blocks: each attempt lets it run and stops it again, up to the
            // bound, then gives up.
            for attempt in 1...3 {
                let (report, took) = try Self.reconcileOnce(victim, target)
                guard case let .busy(reason) = report.outcome else {
                    Issue.record("attempt \(attempt): expected busy, got \(report.outcome)")
                    return
                }
                #expect(reason.contains("thread \(plantedTID) would come back to"), "attempt \(attempt): \(reason)")
                #expect(report.restops == PatchOptions().restopsBeforeEvacuation, "attempt \(attempt): \(report.restops) re-stops")
                #expect(took < .seconds(2), "attempt \(attempt): a hang guard; took \(took)")
                #expect(victim.isAlive, "attempt \(attempt)")
                #expect(try Self.entryBytes(victim, target) == entries, "attempt \(attempt): a function entry changed")
                print("a window's address on a running thread's stack: busy in \(took), \(report.restops) re-stops")
            }
            #expect(try Live.behaviour(victim) == Live.original)

            try Ptrace.signalThread(process: ProcessID(victim.pid), thread: ThreadID(plantedTID), SIGUSR2)
            _ = try victim.waitForLine { $0 == "unplanted" }
            #expect(try Live.reconcile(victim, desired: target, known: [target]).outcome == .applied)
            #expect(victim.isAlive)
        }

        @Test func anUnwinderLockHeldForever_isBusyEveryTime_neverAHang_andThePatchGoesInOnceItIsFree() throws {
            let (process, patch, target) = try Self.startThrower()
            defer { process.stop() }
            let entries = try Self.entryBytes(process, target)
            let unwinder = try Self.unwinder(in: process.pid)
            // Nothing is registered yet, so the program's own exceptions never take this lock: it
            // stays held, as by a thread that never leaves the unwinder.
            let planted = try Self.plant(1, bytes: 4, at: unwinder.lock, in: process.pid)
            for attempt in 1...3 {
                let (report, took) = try Self.reconcileOnce(process, target)
                #expect(report.outcome == .busy(reason: "a thread holds libgcc_s's unwinder lock (it is unwinding)"), "attempt \(attempt): \(report.outcome)")
                #expect(took < .seconds(10), "attempt \(attempt): a hang guard; took \(took)")
                try Self.expectUntouched(process, target, patch: patch, entries: entries, "attempt \(attempt)")
                print("unwinder lock held: busy in \(took)")
            }
            _ = try process.freshLine()
            #expect(try process.freshLine() == "caught 1", "the program throws and catches as before")

            try Self.restore(planted, in: process.pid)
            #expect(try Live.reconcile(process, desired: target, known: [target]).outcome == .applied)
            _ = try process.waitForLine(timeout: 5) { $0 == "caught 2" }
            #expect(process.isAlive)
        }

        @Test func anUnwinderListThatLibgccNeverMade_isRefused_andNotWokenForTheProcessToFollow() throws {
            let (process, patch, target) = try Self.startThrower()
            defer { process.stop() }
            let (entries, unwinder) = (try Self.entryBytes(process, target), try Self.unwinder(in: process.pid))
            // A list head the process planted while no table is registered: its unwinder never
            // looks at it until the "any registered" flag is raised, which registering would do.
            let planted = try Self.plant(0x4141_4141_4141_4141, at: unwinder.head, in: process.pid)
            let (report, _) = try Self.reconcileOnce(process, target)
            guard case let .unpatchable(.cannotMapPatchObject(detail)) = report.outcome else {
                Issue.record("expected a refusal, got \(report.outcome)")
                try Self.restore(planted, in: process.pid)
                return
            }
            #expect(detail.contains("libgcc_s.so"), "\(detail)")
            #expect(detail.contains("its list of registered unwind tables starts at 0x4141414141414141 although no table was ever registered"), "\(detail)")
            try Self.expectUntouched(process, target, patch: patch, entries: entries, "a planted list head")
            #expect(try ProcessMemory(pid: ProcessID(process.pid)).read(at: unwinder.flag, count: 4) == [0, 0, 0, 0], "the flag stays down")
            // Exceptions still unwind as before (the process would die following the planted head).
            for _ in 0..<5 { _ = try process.waitForLine(timeout: 5) { $0 == "caught 1" } }
            #expect(process.isAlive)

            try Self.restore(planted, in: process.pid)
            #expect(try Live.reconcile(process, desired: target, known: [target]).outcome == .applied)
            _ = try process.waitForLine(timeout: 5) { $0 == "caught 2" }
            #expect(process.isAlive)
        }
    }
}
