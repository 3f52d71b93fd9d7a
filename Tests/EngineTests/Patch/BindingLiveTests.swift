import Artifact
import Engine
import Foundation
import HotpatchFixtures
import Testing

/// The programs and patch objects of the binding tests: glibc's indirect functions, the target's
/// static data and thread-locals (Fixtures/indirect_calls.c, target_state.c and their patches).
enum BindingFixtures {
    /// The indirect-calls program, unstripped (to plan from) and stripped (to run, as shipped).
    static func indirectCalls() throws -> (unstripped: String, stripped: String) {
        let unstripped = try Live.builder.build("indirect_calls.c", flags: ["-O0", "-pthread", "-fno-plt", "-Wl,--build-id"])
        let stripped = unstripped + "-stripped"
        if !FileManager.default.fileExists(atPath: stripped) {
            try Program.succeed("strip", ["-o", stripped + ".tmp", unstripped])
            try FileManager.default.moveItem(atPath: stripped + ".tmp", toPath: stripped)
        }
        return (unstripped, stripped)
    }

    /// A patch object built with every call through a GOT slot and no builtins folded away.
    static func callingPatch(_ source: String) throws -> String {
        try Live.builder.build(source, flags: ["-O2", "-shared", "-fPIC", "-fno-plt", "-fno-builtin"], suffix: ".so")
    }

    /// The target-state program, linked against its thread-local library by absolute path.
    static func targetState() throws -> String {
        let library = try Live.builder.build("target_state_lib.c", flags: ["-O0", "-shared", "-fPIC"], suffix: ".so")
        return try Live.builder.build("target_state.c", flags: ["-O0", "-pthread", "-Wl,--build-id", "-Wl,--no-as-needed", library])
    }

    /// The loader that opens `late_tls_lib` with dlopen, and that library.
    static func lateThreadLocals() throws -> (loader: String, library: String) {
        let library = try Live.builder.build("late_tls_lib.c", flags: ["-O0", "-shared", "-fPIC", "-Wl,--build-id"], suffix: ".so")
        return (try Live.builder.build("late_tls_loader.c", flags: ["-O0"]), library)
    }

    /// The hotpatch target replacing `replacements` of `program` with `patch`, planned as hotpatch-pack does.
    static func plan(_ program: String, patch: String, _ replacements: [(String, String)],
                     references: [String] = []) throws -> HotpatchTarget {
        let plan = try RedirectionPlanner.plan(target: ELFFile.load(path: program), debugFile: nil,
                                               patchObject: PatchObject(path: patch), replacements: replacements,
                                               references: references)
        return HotpatchTarget(buildID: plan.buildID, pathHint: program, patchObjectPath: patch,
                              redirections: plan.redirections, references: plan.references)
    }

    /// "NAME=0xADDRESS" words of a line, by name.
    static func addresses(in line: String) -> [String: String] {
        var found: [String: String] = [:]
        for word in line.split(separator: " ") {
            let parts = word.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[1].hasPrefix("0x") { found[String(parts[0])] = String(parts[1]) }
        }
        return found
    }

    /// Indirect functions the fixture never imports: only libc's own IRELATIVE slots hold them.
    static let unimportedIndirectFunctions = ["strrchr", "memmove", "strcasecmp", "strncmp", "strcspn", "strpbrk",
                                              "strspn", "memrchr"]

    /// The thirteen indirect functions the fixture and the patch both call.
    static let indirectFunctions = ["strlen", "memcpy", "memset", "memcmp", "strcmp", "strchr", "memchr",
                                    "strncpy", "strcpy", "stpcpy", "strnlen", "wmemset", "strstr"]
}

extension LivePatchTests {
    @Test func load_bindsEveryIndirectFunctionToTheImplementationTheProcessItselfCalls() throws {
        let program = try BindingFixtures.indirectCalls()
        let patch = try BindingFixtures.callingPatch("patch_indirect_calls.c")
        let target = try BindingFixtures.plan(program.unstripped, patch: patch,
                                              [("tick", "tick_fixed"), ("format_record", "format_record_fixed")])
        let process = try RunningProcess(program.stripped)
        defer { process.stop() }
        let own = BindingFixtures.addresses(in: try process.waitForLine(timeout: 10) { $0.hasPrefix("fixture ") })
        // For functions the program does not import, its dynamic linker's own answer (dlsym).
        let resolved = BindingFixtures.addresses(in: try process.waitForLine(timeout: 10) { $0.hasPrefix("resolved ") })
        _ = try process.waitForLine(timeout: 10) { $0 == "ready" }
        #expect(own.count == BindingFixtures.indirectFunctions.count, "\(own)")
        #expect(resolved.count == BindingFixtures.unimportedIndirectFunctions.count, "\(resolved)")

        let report = try Live.reconcile(process, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")
        let bound = BindingFixtures.addresses(in: try process.waitForLine(timeout: 10) { $0.hasPrefix("patch ") })
        for (name, expected) in own.merging(resolved, uniquingKeysWith: { first, _ in first }) {
            #expect(bound[name] == expected, "\(name): patch bound \(bound[name] ?? "nothing"), process uses \(expected)")
        }
        #expect(bound.count == own.count + resolved.count, "\(bound)")
    }

    @Test func patchedFunction_callingSnprintfAndIndirectFunctions_runsCorrectlyInEveryThreadOfAStrippedProgram() throws {
        let program = try BindingFixtures.indirectCalls()
        let patch = try BindingFixtures.callingPatch("patch_indirect_calls.c")
        let target = try BindingFixtures.plan(program.unstripped, patch: patch, [("format_record", "format_record_fixed")])
        let process = try RunningProcess(program.stripped)
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0 == "ready" }
        _ = try process.waitForLine { $0.hasSuffix(" original") }

        #expect(try Live.reconcile(process, desired: target, known: [target]).outcome == .applied)
        var patchedWorkers: Set<Substring> = []
        let until = Date().addingTimeInterval(10)
        while patchedWorkers.count < 3, Date() < until {
            let line = try process.nextLine()
            guard line.hasPrefix("worker="), !line.hasSuffix(" original") else { continue }
            #expect(line.hasSuffix(" patched ok=1"), "\(line)")
            patchedWorkers.insert(line.split(separator: " ")[0])
        }
        #expect(patchedWorkers.count == 3, "\(patchedWorkers)")
        #expect(try Live.reconcile(process, desired: nil, known: [target]).outcome == .reverted)
        _ = try process.waitForLine { $0.hasSuffix(" original") }
        #expect(process.isAlive)
    }

    @Test func load_whenNoSlotOfTheProcessHoldsAnIndirectFunction_refusesNamingItAndLeavesTheProcessAlone() throws {
        let program = try BindingFixtures.indirectCalls()
        let patch = try BindingFixtures.callingPatch("patch_unbound_indirect.c")
        let target = try BindingFixtures.plan(program.unstripped, patch: patch, [("format_record", "format_record_fixed")])
        let process = try RunningProcess(program.stripped)
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0 == "ready" }

        let report = try Live.reconcile(process, desired: target, known: [target])
        guard case let .unpatchable(.patchObjectRejected(detail)) = report.outcome else {
            Issue.record("expected a rejection, got \(report.outcome)")
            return
        }
        #expect(detail.contains("strncat@GLIBC_2.2.5 is a GNU indirect function in /"), "\(detail)")
        #expect(detail.contains("libc.so.6 and this process has no bound slot for it"), "\(detail)")
        #expect(report.injectedSystemCalls == 0)
        #expect(Live.mapsLines(process.pid, containing: "patch_unbound_indirect").isEmpty)
        _ = try process.waitForLine { $0.hasSuffix(" original") }
    }

    @Test func patchCode_readsAndWritesTheTargetsStaticDataAndEachThreadsOwnThreadLocals() throws {
        let program = try BindingFixtures.targetState()
        let patch = try Live.builder.patchObject("patch_target_state.c")
        let target = try BindingFixtures.plan(program, patch: patch, [("next_ticket", "next_ticket_fixed"), ("step", "step_fixed")],
                                              references: ["counter.0", "limit", "scale", "exe_tls_gd", "exe_tls_ie"])
        #expect(target.references.filter { $0.kind == .threadLocal }.map(\.symbol).sorted() == ["exe_tls_gd", "exe_tls_ie"])
        let process = try RunningProcess(program)
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        let before = try ticket(in: process.waitForLine { $0.hasPrefix("ticket=") })

        let report = try Live.reconcile(process, desired: target, known: [target])
        #expect(report.outcome == .applied, "\(report.outcome)")

        // The static local goes on from where the original left it, 100 a call.
        var tickets: [Int] = []
        var totals: [Substring: [Int]] = [:]
        let until = Date().addingTimeInterval(10)
        while Date() < until, tickets.filter({ $0 >= before + 100 }).count < 4 || totals.count < 4 || totals.values.contains(where: { $0.count < 4 }) {
            let line = try process.nextLine()
            #expect(!line.contains("MISMATCH"), "\(line)")
            if line.hasPrefix("ticket=") {
                tickets.append(try ticket(in: line))
            } else if line.hasPrefix("worker="), let total = line.split(separator: "=").last.flatMap({ Int($0) }) {
                totals[line.split(separator: " ")[0], default: []].append(total)
            }
        }
        let patched = tickets.drop { $0 < before + 100 }
        #expect(patched.count >= 3 && zip(patched, patched.dropFirst()).allSatisfy { $1 - $0 == 100 }, "before \(before): \(tickets)")
        #expect(patched.first.map { $0 - before <= 200 } == true, "before \(before): \(tickets)")
        // Every worker's own thread-locals grew by 1000 a step once patched (50 steps between lines).
        #expect(totals.count == 4, "\(totals)")
        for (worker, seen) in totals {
            #expect(zip(seen, seen.dropFirst()).contains { $1 - $0 >= 50 * 1000 }, "\(worker): \(seen)")
        }
        #expect(try Live.reconcile(process, desired: nil, known: [target]).outcome == .reverted)
        #expect(process.isAlive)
    }

    @Test func referenceKindThatDisagreesWithThePatchsDeclaration_isRefusedBeforeTheProcessIsTouched() throws {
        let program = try BindingFixtures.targetState()
        let patch = try Live.builder.patchObject("patch_target_state.c")
        var target = try BindingFixtures.plan(program, patch: patch, [("next_ticket", "next_ticket_fixed"), ("step", "step_fixed")],
                                              references: ["counter.0", "limit", "scale", "exe_tls_gd", "exe_tls_ie"])
        // A hand-edited manifest that calls the thread-local an address (its TLS offset would be
        // read as an offset from the load base).
        target.references = target.references.map { reference in
            var changed = reference
            if reference.symbol == "exe_tls_gd" { changed.kind = .address }
            return changed
        }
        let process = try RunningProcess(program)
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }

        let report = try Live.reconcile(process, desired: target, known: [target])
        guard case let .unpatchable(.patchObjectRejected(detail)) = report.outcome else {
            Issue.record("expected a refusal, got \(report.outcome)")
            return
        }
        #expect(detail.contains("exe_tls_gd") && detail.contains("__thread"), "\(detail)")
        #expect(report.injectedSystemCalls == 0)
        #expect(Live.mapsLines(process.pid, containing: "patch_target_state").isEmpty)
        #expect(process.isAlive)
    }

    private func ticket(in line: String) throws -> Int {
        try #require(Int(line.dropFirst("ticket=".count)))
    }

    @Test func threadLocalOfALibraryOpenedWithDlopen_bindsByGlobalDynamicAndRefusesInitialExec() throws {
        let built = try BindingFixtures.lateThreadLocals()
        let process = try RunningProcess(built.loader, [built.library])
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0 == "ready" }

        let initialExec = try BindingFixtures.plan(built.library, patch: Live.builder.patchObject("patch_late_tls_initial_exec.c"),
                                                   [("late_step", "late_step_fixed")])
        let refused = try Live.reconcile(process, desired: initialExec, known: [initialExec])
        guard case let .unpatchable(.patchObjectRejected(detail)) = refused.outcome else {
            Issue.record("expected a rejection, got \(refused.outcome)")
            return
        }
        #expect(detail.contains("by the initial-exec model, but that object's thread-locals are not in static TLS"), "\(detail)")

        let globalDynamic = try BindingFixtures.plan(built.library, patch: Live.builder.patchObject("patch_late_tls.c"),
                                                     [("late_step", "late_step_fixed")])
        let before = try value(in: process.waitForLine { $0.hasPrefix("value=") })
        #expect(try Live.reconcile(process, desired: globalDynamic, known: [globalDynamic]).outcome == .applied)
        // The thread's own counter goes on from where the library left it, 100 a call.
        var values: [Int] = []
        while values.count < 4 {
            let next = try value(in: process.waitForLine { $0.hasPrefix("value=") })
            if next >= before + 100 { values.append(next) }
        }
        #expect(zip(values, values.dropFirst()).allSatisfy { $1 - $0 == 100 }, "before \(before): \(values)")
        #expect(values[0] - before <= 200, "before \(before): \(values)")
    }

    private func value(in line: String) throws -> Int {
        try #require(Int(line.dropFirst("value=".count)))
    }

    @Test func load_whenThreadLocalnessDisagreesWithTheLoadedObject_refusesNamingTheSymbolAndObject() throws {
        let program = try BindingFixtures.targetState()
        let directory = try TemporaryDirectory(prefix: "binding-test")
        defer { directory.remove() }
        let cases = [
            ("declares_function_thread_local", "extern __thread long lib_tls_sum; long step_fixed(void) { return lib_tls_sum; }\n",
             "lib_tls_sum in ", "target_state_lib", "is not a thread-local variable, but the patch object declares it __thread"),
            ("declares_thread_local_plain", "extern long lib_tls_ie; long step_fixed(void) { return lib_tls_ie; }\n",
             "lib_tls_ie in ", "target_state_lib", "is a thread-local variable; declare it `extern __thread` in the patch object"),
        ]
        let process = try RunningProcess(program)
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0.hasPrefix("ready") }
        for (name, source, symbol, object, why) in cases {
            let patch = try FixtureBuilder.compile(text: source, to: directory.file(name + ".so"), flags: ["-O2", "-shared", "-fPIC"])
            let target = try BindingFixtures.plan(program, patch: patch, [("step", "step_fixed")])
            let report = try Live.reconcile(process, desired: target, known: [target])
            guard case let .unpatchable(.patchObjectRejected(detail)) = report.outcome else {
                Issue.record("\(name): expected a rejection, got \(report.outcome)")
                continue
            }
            #expect(detail.contains(symbol) && detail.contains(object) && detail.contains(why), "\(name): \(detail)")
            #expect(report.injectedSystemCalls == 0)
        }
        let line = try process.waitForLine { $0.hasPrefix("worker=") }
        #expect(!line.contains("MISMATCH"), "\(line)")
    }
}
