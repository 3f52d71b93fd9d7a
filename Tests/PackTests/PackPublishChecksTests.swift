import Foundation
import Testing
@testable import Artifact

/// The checks `hotpatch-pack` runs before signing (`PublishChecks`): function entries
/// disassembled with Capstone, and the patch object's undefined symbols resolved against what the
/// target depends on. Real objects compiled at test time; a refusal is shown at `publish`, on an
/// index whose release was added without these checks (as an older hotpatch-pack or a hand edit
/// would leave it), and must sign nothing.
@Suite struct PackPublishChecksTests {
    /// A library of entry shapes. `crc32` is zlib's (`mov %edx,%edx; jmp crc32_z`, 7 bytes, from C);
    /// the others are written out so the bytes are exact.
    static let entrySource = """
        __attribute__((noinline)) unsigned long crc32_z(unsigned long crc, const unsigned char *buf, unsigned long len) {
            while (len--) crc = (crc >> 1) ^ *buf++;
            return crc;
        }
        unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len) { return crc32_z(crc, buf, len); }
        __asm__(".text\\n"
                ".globl loop_head_fn\\n.type loop_head_fn,@function\\nloop_head_fn:\\n"
                " xor %eax, %eax\\n1: add %edi, %eax\\n dec %esi\\n jnz 1b\\n ret\\n.size loop_head_fn, .-loop_head_fn\\n"
                ".globl entry_loop_fn\\n.type entry_loop_fn,@function\\nentry_loop_fn:\\n"
                "1: add %edi, %eax\\n dec %esi\\n jnz 1b\\n ret\\n.size entry_loop_fn, .-entry_loop_fn\\n"
                ".globl far_loop_fn\\n.type far_loop_fn,@function\\nfar_loop_fn:\\n"
                " mov $0, %eax\\n1: add %edi, %eax\\n dec %esi\\n .fill 6, 1, 0x90\\n jnz 1b\\n ret\\n.size far_loop_fn, .-far_loop_fn\\n"
                ".globl inner_branch_fn\\n.type inner_branch_fn,@function\\ninner_branch_fn:\\n"
                " test %edi, %edi\\n je 1f\\n1: lea 1(%rdi), %eax\\n ret\\n.size inner_branch_fn, .-inner_branch_fn\\n"
                ".globl tiny_fn\\n.type tiny_fn,@function\\ntiny_fn:\\n xor %eax, %eax\\n ret\\n.size tiny_fn, 8\\n"
                ".globl after_fn\\n.type after_fn,@function\\nafter_fn:\\n mov $2, %eax\\n ret\\n.size after_fn, .-after_fn\\n"
                ".globl early_call_fn\\n.type early_call_fn,@function\\nearly_call_fn:\\n"
                " sub $8, %rsp\\n call after_fn\\n add $8, %rsp\\n ret\\n .fill 4, 1, 0x90\\n.size early_call_fn, .-early_call_fn\\n"
                ".globl first_call_fn\\n.type first_call_fn,@function\\nfirst_call_fn:\\n"
                " call *%rsi\\n ret\\n .fill 4, 1, 0x90\\n.size first_call_fn, .-first_call_fn\\n"
                ".p2align 12\\n.skip 4094\\n"
                ".globl cross_page_fn\\n.type cross_page_fn,@function\\ncross_page_fn:\\n"
                " lea 1(%rdi), %eax\\n imul %esi, %eax\\n ret\\n.size cross_page_fn, .-cross_page_fn\\n");
        """

    /// Built with -fcf-protection=full: the function starts with endbr64, as on Ubuntu and Fedora.
    static let endbrSource = "int endbr_fn(int x) { return x * 3 + 1; }\n"

    /// A program depending on libhelper_a.so (found through DT_RUNPATH $ORIGIN) and libc.
    static let appSource = """
        #include <stdio.h>
        int helper_a(int);
        __attribute__((noinline)) int work(int x) { return helper_a(x) * 2 + x / 3; }
        int main(int argc, char **argv) { (void)argv; printf("%d\\n", work(argc)); return 0; }
        """

    /// A scratch folder with the entry library, the program, its helper libraries, patch objects,
    /// keys and a channel with baseline B1.
    func prepare() throws -> Scratch {
        let scratch = try Scratch()
        try scratch.write("entry.c", Self.entrySource)
        try scratch.write("endbr.c", Self.endbrSource)
        try scratch.write("app.c", Self.appSource)
        try scratch.write("helper_a.c", "int helper_a(int x) { return x + 40; }\n")
        try scratch.write("helper_b.c", "int helper_b(int x) { return x - 40; }\n")
        try scratch.write("fix.c", "int fixed(int x) { return x + 1; }\n")
        try scratch.write("fix_libs.c", """
            #include <stdio.h>
            #include <string.h>
            int helper_a(int);
            extern void optional_hook(int) __attribute__((weak));
            int work_fixed(int x) {
                char text[32];
                snprintf(text, sizeof text, "%d", x);
                if (optional_hook) optional_hook(x);
                return helper_a((int)strlen(text)) * 2;
            }
            """)
        try scratch.write("fix_missing.c", "int helper_b(int);\nint work_fixed(int x) { return helper_b(x) * 2; }\n")
        try Shell.sh("""
            cc -O2 -fPIC -fcf-protection=none -c entry.c -o entry.o &&
            cc -O2 -fPIC -fcf-protection=full -c endbr.c -o endbr.o &&
            cc -shared -Wl,--build-id -o libentry.so entry.o endbr.o &&
            cc -shared -fPIC -O1 -Wl,--build-id -o fix.so fix.c &&
            cc -shared -fPIC -O1 -Wl,--build-id -Wl,-soname,libhelper_a.so -o libhelper_a.so helper_a.c &&
            mkdir -p extra && cc -shared -fPIC -O1 -Wl,--build-id -o extra/libhelper_b.so helper_b.c &&
            cc -O1 -Wl,--build-id -Wl,--enable-new-dtags -Wl,-rpath,'$ORIGIN' -o app app.c -L. -lhelper_a &&
            cc -shared -fPIC -O1 -Wl,--build-id -o fix_libs.so fix_libs.c &&
            cc -shared -fPIC -O1 -Wl,--build-id -o fix_missing.so fix_missing.c
            """, in: scratch.path)
        try scratch.channelWithBaseline()
        return scratch
    }

    /// Adds hotpatch `id` straight into the channel's index, planned by the real planner but with
    /// none of the pack-time checks, as an older hotpatch-pack or a hand edit would leave it.
    /// `shipping` is the file put into the channel in place of `patch` (default: `patch` itself).
    func addUncheckedHotpatch(_ scratch: Scratch, id: String, level: Int, target: String, patch: String,
                              replace: (String, String), shipping: String? = nil) throws {
        let plan = try RedirectionPlanner.plan(target: try ELFFile.load(path: scratch.path + "/" + target), debugFile: nil,
                                               patchObject: try PatchObject(path: scratch.path + "/" + patch),
                                               replacements: [replace], references: [])
        let relative = "hotpatches/\(id)/\(patch)"
        try FileManager.default.createDirectory(atPath: scratch.path + "/channel/hotpatches/\(id)", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: scratch.path + "/" + (shipping ?? patch), toPath: scratch.path + "/channel/" + relative)
        let digest = try ChannelFileDigest.compute(path: scratch.path + "/channel/" + relative)
        var index = try scratch.index()
        let entry = ChannelIndex.Target(buildID: plan.buildID, pathHint: scratch.path + "/" + target,
                                        patchObject: .init(path: relative, sha256: digest.sha256, length: digest.length),
                                        redirections: plan.redirections, references: plan.references)
        index.releases.append(.hotpatch(id: id, baseline: "B1", level: level, description: "", cves: [], targets: [entry], kernel: []))
        try Data(index.encoded()).write(to: URL(fileURLWithPath: scratch.path + "/channel/index.json"))
    }

    /// Publishes and expects a refusal that signs nothing.
    func publishRefused(_ scratch: Scratch, _ extra: String...) throws -> String {
        let before = try scratch.index().version
        let result = try Pack.run(["publish", "--channel", "channel", "--private-key", "publisher.key"] + extra, in: scratch.path)
        #expect(result.status != 0, "publish succeeded: \(result.stdout)")
        #expect(try scratch.index().version == before)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/index.json.sig"))
        return result.stderr
    }

    /// Prepares a scratch folder, adds an unchecked hotpatch replacing `replace.0` of `target` and
    /// expects `publish` to refuse it; returns the folder and what publish printed.
    func refusedAtPublish(target: String, patch: String, replace: (String, String)) throws -> (Scratch, String) {
        let scratch = try prepare()
        try addUncheckedHotpatch(scratch, id: "hp1", level: 1, target: target, patch: patch, replace: replace)
        return (scratch, try publishRefused(scratch))
    }

    /// Adds the hotpatch through `hotpatch-pack hotpatch` and publishes it; both must succeed.
    @discardableResult
    func hotpatchAndPublish(_ scratch: Scratch, target: String, patch: String, replace: String,
                            publishing extra: [String] = []) throws -> String {
        let added = try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                       "--target", target, "--patch", patch, "--replace", replace)
        let published = try Pack.run(["publish", "--channel", "channel", "--private-key", "publisher.key"] + extra, in: scratch.path)
        #expect(published.status == 0, "publish failed: \(published.stderr)")
        return added.stderr + published.stderr
    }

    // MARK: Entries

    @Test func publish_zlibCrc32Shape_overwritingPartOfItsJump_passes() throws {
        let scratch = try prepare()
        let bytes = try Shell.sh("objdump -d --section=.text libentry.so | grep -A2 '<crc32>:'", in: scratch.path)
        #expect(bytes.contains("89 d2") && bytes.contains("e9 "), "not zlib's shape: \(bytes)")
        let stderr = try hotpatchAndPublish(scratch, target: "libentry.so", patch: "fix.so", replace: "crc32=fixed")
        #expect(!stderr.contains("crc32:"), "\(stderr)")
    }

    @Test func publish_loopHeadInsideTheJump_isRefused() throws {
        let (_, stderr) = try refusedAtPublish(target: "libentry.so", patch: "fix.so", replace: ("loop_head_fn", "fixed"))
        #expect(stderr.contains("Release hp1: Refusing to redirect loop_head_fn"), "\(stderr)")
        #expect(stderr.contains("would overwrite a branch target: jne at loop_head_fn+0x6 jumps to loop_head_fn+0x2"), "\(stderr)")
    }

    @Test func hotpatch_loopHeadInsideTheJump_isRefusedBeforeAnythingIsWritten() throws {
        let scratch = try prepare()
        let before = try scratch.index().releases.count
        let result = try Pack.run(["hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                   "--target", "libentry.so", "--patch", "fix.so", "--replace", "loop_head_fn=fixed"], in: scratch.path)
        #expect(result.status != 0)
        #expect(result.stderr.contains("would overwrite a branch target: jne at loop_head_fn+0x6"), "\(result.stderr)")
        #expect(try scratch.index().releases.count == before)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/channel/hotpatches/hp1"))
    }

    @Test func hotpatch_undefinedSymbolGivenWithProvider_passesWhereItWouldBeRefusedWithout() throws {
        let scratch = try prepare()
        let arguments = ["hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                         "--target", "app", "--patch", "fix_missing.so", "--replace", "work=work_fixed"]
        let refused = try Pack.run(arguments, in: scratch.path)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("undefined symbol helper_b cannot be resolved"), "\(refused.stderr)")
        let passed = try Pack.run(arguments + ["--provider", "extra/libhelper_b.so"], in: scratch.path)
        #expect(passed.status == 0, "\(passed.stderr)")
    }

    @Test func publish_loopBackToTheEntryItself_passes() throws {
        let scratch = try prepare()
        try hotpatchAndPublish(scratch, target: "libentry.so", patch: "fix.so", replace: "entry_loop_fn=fixed")
    }

    @Test func publish_branchThatTheJumpOverwritesItself_passes() throws {
        // `je` at offset 2 goes to offset 4, inside the jump, but the jump overwrites the `je` too.
        let scratch = try prepare()
        try hotpatchAndPublish(scratch, target: "libentry.so", patch: "fix.so", replace: "inner_branch_fn=fixed")
    }

    @Test func publish_callReturningInsideTheJump_isRefused() throws {
        // `call *%rsi` is the first 2 bytes: a thread in the callee comes back at offset 2.
        let (_, stderr) = try refusedAtPublish(target: "libentry.so", patch: "fix.so", replace: ("first_call_fn", "fixed"))
        #expect(stderr.contains("Release hp1: Refusing to redirect first_call_fn"), "\(stderr)")
        #expect(stderr.contains("would hold a return address: call at first_call_fn+0x0 returns to first_call_fn+0x2, inside the jump"),
                "\(stderr)")
    }

    @Test func hotpatch_callReturningInsideOnlyTheAbsoluteJump_publishesItNearOnlyAndSaysSo() throws {
        // `sub $8,%rsp` (4 bytes) then a 5-byte call: the callee returns to offset 9.
        let scratch = try prepare()
        let added = try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                       "--target", "libentry.so", "--patch", "fix.so", "--replace", "early_call_fn=fixed")
        #expect(added.stderr.contains("warning: early_call_fn: call at early_call_fn+0x4 returns to early_call_fn+0x9, inside the 14-byte absolute jump"),
                "\(added.stderr)")
        #expect(added.stderr.contains("the agent will use only the 5-byte jump for it"), "\(added.stderr)")
        _ = try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        #expect(try publishedRedirections(scratch)["early_call_fn"]?.nearOnly == true)
    }

    @Test func publish_jumpRunningPastTheFunctionsCode_isRefused() throws {
        let (_, stderr) = try refusedAtPublish(target: "libentry.so", patch: "fix.so", replace: ("tiny_fn", "fixed"))
        #expect(stderr.contains("would run past its code into after_fn, which starts at tiny_fn+0x3"), "\(stderr)")
    }

    /// The redirections of the published index's one hotpatch, by symbol.
    func publishedRedirections(_ scratch: Scratch) throws -> [String: FunctionRedirection] {
        var found: [String: FunctionRedirection] = [:]
        for case let .hotpatch(_, _, _, _, _, targets, _, _) in try scratch.index().releases {
            for redirection in targets.flatMap(\.redirections) { found[redirection.symbol] = redirection }
        }
        return found
    }

    @Test func hotpatch_branchTargetInsideOnlyTheAbsoluteJump_publishesItNearOnlyAndSaysSo() throws {
        let scratch = try prepare()
        let added = try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                       "--target", "libentry.so", "--patch", "fix.so",
                                       "--replace", "far_loop_fn=fixed", "--replace", "crc32=fixed")
        #expect(added.stderr.contains("warning: far_loop_fn: jne at far_loop_fn+0xf jumps to far_loop_fn+0x5, inside the 14-byte absolute jump"),
                "\(added.stderr)")
        #expect(added.stderr.contains("the agent will use only the 5-byte jump for it"), "\(added.stderr)")
        let published = try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        #expect(published.stderr.contains("warning: release hp1: far_loop_fn: jne at far_loop_fn+0xf"), "\(published.stderr)")
        #expect(!published.stderr.contains("is now marked near_only"), "\(published.stderr)")

        let redirections = try publishedRedirections(scratch)
        #expect(redirections["far_loop_fn"]?.nearOnly == true)
        #expect(redirections["crc32"]?.nearOnly == false)
        let text = try String(contentsOfFile: scratch.path + "/channel/index.json", encoding: .utf8)
        #expect(text.components(separatedBy: #""near_only": true"#).count == 2, "\(text)")
    }

    @Test func publish_indexWrittenWithoutNearOnly_marksTheFunctionBeforeSigning() throws {
        let scratch = try prepare()
        try addUncheckedHotpatch(scratch, id: "hp1", level: 1, target: "libentry.so", patch: "fix.so", replace: ("far_loop_fn", "fixed"))
        #expect(try publishedRedirections(scratch)["far_loop_fn"]?.nearOnly == false)
        let published = try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        #expect(published.stderr.contains("note: release hp1: far_loop_fn is now marked near_only in the index"), "\(published.stderr)")
        #expect(try publishedRedirections(scratch)["far_loop_fn"]?.nearOnly == true)
    }

    @Test func publish_endbr64Entry_passes() throws {
        let scratch = try prepare()
        let bytes = try Shell.sh("objdump -d libentry.so | grep -A1 '<endbr_fn>:'", in: scratch.path)
        #expect(bytes.contains("endbr64"), "\(bytes)")
        try hotpatchAndPublish(scratch, target: "libentry.so", patch: "fix.so", replace: "endbr_fn=fixed")
    }

    @Test func publish_entryCrossingAPage_passes() throws {
        let scratch = try prepare()
        try hotpatchAndPublish(scratch, target: "libentry.so", patch: "fix.so", replace: "cross_page_fn=fixed")
        let redirection = try #require(try scratch.index().releases.compactMap { release -> FunctionRedirection? in
            if case let .hotpatch(_, _, _, _, _, targets, _, _) = release { return targets.first?.redirections.first } else { return nil }
        }.first)
        #expect(redirection.offset % 4096 > 4096 - 5, "cross_page_fn at \(redirection.offset) does not cross a page in its first 5 bytes")
    }

    // MARK: The patch object

    @Test func publish_patchObjectWithThreadLocalsOfItsOwn_isRefusedAsTheAgentRefusesIt() throws {
        let scratch = try prepare()
        try scratch.write("fix_tls.c", "__thread int per_thread;\nint fixed(int x) { return x + per_thread; }\n")
        try Shell.sh("cc -shared -fPIC -O1 -Wl,--build-id -o fix_tls.so fix_tls.c", in: scratch.path)
        try addUncheckedHotpatch(scratch, id: "hp1", level: 1, target: "libentry.so", patch: "fix.so", replace: ("crc32", "fixed"),
                                 shipping: "fix_tls.so")
        let stderr = try publishRefused(scratch)
        #expect(stderr.contains("Release hp1: ") && stderr.contains("channel/hotpatches/hp1/fix.so") && stderr.contains("PT_TLS"),
                "\(stderr)")
    }

    // MARK: Undefined symbols

    @Test func publish_symbolsFromTheTargetsDependencies_passInAMainExecutable() throws {
        let scratch = try prepare()
        let stderr = try hotpatchAndPublish(scratch, target: "app", patch: "fix_libs.so", replace: "work=work_fixed")
        #expect(!stderr.contains("note:"), "\(stderr)")
    }

    @Test func publish_undefinedSymbolNoDependencyDefines_isRefused() throws {
        let (scratch, stderr) = try refusedAtPublish(target: "app", patch: "fix_missing.so", replace: ("work", "work_fixed"))
        #expect(stderr.contains("Release hp1: Refusing patch object"), "\(stderr)")
        #expect(stderr.contains("undefined symbol helper_b cannot be resolved in the target process"), "\(stderr)")
        #expect(stderr.contains("libhelper_a.so (\(scratch.path)/libhelper_a.so)"), "\(stderr)")
        #expect(stderr.contains("--provider ELF"), "\(stderr)")
    }

    @Test func publish_undefinedSymbolGivenWithProvider_passes() throws {
        let scratch = try prepare()
        try addUncheckedHotpatch(scratch, id: "hp1", level: 1, target: "app", patch: "fix_missing.so", replace: ("work", "work_fixed"))
        try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key", "--provider", "extra/libhelper_b.so")
    }

    @Test func publish_symbolVersionNoDependencyDefines_isRefused() throws {
        let scratch = try prepare()
        try scratch.write("v1.map", "VER_1 { global: ver_fn; local: *; };\n")
        try scratch.write("v2.map", "VER_1 { local: *; };\nVER_2 { global: ver_fn; } VER_1;\n")
        try scratch.write("ver.c", "int ver_fn(int x) { return x; }\n")
        try scratch.write("user.c", "int ver_fn(int);\n__attribute__((noinline)) int use(int x) { return ver_fn(x) + 1; }\n")
        try scratch.write("fix_ver.c", "int ver_fn(int);\nint use_fixed(int x) { return ver_fn(x) + 2; }\n")
        try Shell.sh("""
            cc -shared -fPIC -Wl,-soname,libver.so.1 -Wl,--version-script=v1.map -o libver.so.1 ver.c &&
            mkdir -p v2 && cc -shared -fPIC -Wl,-soname,libver.so.1 -Wl,--version-script=v2.map -o v2/libver.so.1 ver.c &&
            cc -shared -fPIC -O1 -Wl,--build-id -Wl,--enable-new-dtags -Wl,-rpath,'$ORIGIN' -o libuser.so user.c libver.so.1 &&
            cc -shared -fPIC -O1 -Wl,--build-id -o fix_ver.so fix_ver.c v2/libver.so.1
            """, in: scratch.path)
        try addUncheckedHotpatch(scratch, id: "hp1", level: 1, target: "libuser.so", patch: "fix_ver.so", replace: ("use", "use_fixed"))
        let stderr = try publishRefused(scratch)
        #expect(stderr.contains("undefined symbol ver_fn@VER_2 (defined only as VER_1 in libver.so.1 (\(scratch.path)/libver.so.1))"),
                "\(stderr)")
    }

    @Test func publish_targetMissingAtItsPathHint_notesTheSkippedChecks() throws {
        let scratch = try prepare()
        try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                           "--target", "app", "--patch", "fix_libs.so", "--replace", "work=work_fixed", "--path-hint", "/nonexistent/app")
        let result = try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        #expect(result.stderr.contains("note: release hp1: no file with build-id"), "\(result.stderr)")
        #expect(result.stderr.contains("at /nonexistent/app, so its undefined symbols and function entries were not checked again"))
    }
}
