import Foundation
import Testing
@testable import Artifact

/// `hotpatch-pack hotpatch` on real objects compiled at test time, checked against readelf.
@Suite struct PackHotpatchTests {
    static let targetSource = """
        #include <stdio.h>
        int counter = 3;
        static int table[4] = {1, 2, 3, 4};
        __attribute__((noinline)) int parse(int x) {
            int s = 0;
            for (int i = 0; i < x; i++) s += table[i & 3] * counter;
            return s;
        }
        __asm__(".text\\n"
                ".globl short_fn\\n.type short_fn,@function\\nshort_fn:\\n ret\\n.size short_fn, .-short_fn\\n"
                ".globl mid_fn\\n.type mid_fn,@function\\nmid_fn:\\n mov $1, %eax\\n ret\\n.size mid_fn, .-mid_fn\\n"
                ".type parse.isra.0,@function\\nparse.isra.0:\\n ret\\n.size parse.isra.0, .-parse.isra.0\\n");
        int main(int argc, char **argv) { (void)argv; printf("%d\\n", parse(argc)); return 0; }
        """

    static let patchSource = """
        extern int counter;
        int parse_fixed(int x) { return x * counter; }
        int other_fixed(void) { return 0; }
        """

    /// A scratch folder with `target` (unstripped), `target.stripped` + `target.debug`, `fix.so`,
    /// `libdemo.so.stripped` (a stripped shared library), keys and a channel with baseline B1.
    func prepare() throws -> Scratch {
        let scratch = try Scratch()
        try scratch.write("target.c", Self.targetSource)
        try scratch.write("fix.c", Self.patchSource)
        try scratch.write("lib.c", "__attribute__((noinline)) int lib_fn(int x) { return x * 7 + 1 + (x >> 3) * (x & 5); }\n")
        try Shell.sh("""
            cc -O1 -g -Wl,--build-id -o target target.c &&
            objcopy --only-keep-debug target target.debug && cp target target.stripped && strip target.stripped &&
            cc -shared -fPIC -O1 -Wl,--build-id -o fix.so fix.c &&
            cc -shared -fPIC -O1 -Wl,--build-id -o libdemo.so lib.c && cp libdemo.so libdemo.so.stripped &&
            strip libdemo.so.stripped
            """, in: scratch.path)
        try scratch.channelWithBaseline()
        return scratch
    }

    /// What readelf says about `symbol` in `file`: build-id, offset, size, and the SHA-256 of its bytes.
    func readelfFacts(_ symbol: String, in file: String, bytesFrom bytesFile: String, scratch: Scratch)
        throws -> (buildID: String, offset: UInt64, size: UInt64, sha256: String) {
        let notes = try Shell.sh("readelf -n \(file)", in: scratch.path)
        let buildID = notes.split(separator: "\n").first { $0.contains("Build ID:") }?
            .split(separator: " ").last.map(String.init) ?? ""
        let symbols = try Shell.sh("readelf -sW \(file)", in: scratch.path)
        let fields = symbols.split(separator: "\n").map { $0.split(separator: " ") }.first { $0.last == Substring(symbol) } ?? []
        let offset = UInt64(fields.count > 2 ? fields[1] : "0", radix: 16) ?? 0
        let size = UInt64(fields.count > 2 ? fields[2] : "0") ?? 0
        // File offset of the function: find the section holding it.
        let sections = try Shell.sh("readelf -SW \(bytesFile)", in: scratch.path)
        var fileOffset: UInt64 = 0
        for line in sections.split(separator: "\n") where line.contains(" PROGBITS ") {
            let parts = line.split(separator: " ")
            guard let typeIndex = parts.firstIndex(of: "PROGBITS"), parts.count > typeIndex + 3,
                  let address = UInt64(parts[typeIndex + 1], radix: 16), let start = UInt64(parts[typeIndex + 2], radix: 16),
                  let length = UInt64(parts[typeIndex + 3], radix: 16), offset >= address, offset < address + length
            else { continue }
            fileOffset = start + offset - address
        }
        let digest = try Shell.sh("dd if=\(bytesFile) bs=1 skip=\(fileOffset) count=\(size) 2>/dev/null | sha256sum", in: scratch.path)
        return (buildID, offset, size, String(digest.prefix(64)))
    }

    func verifiedHotpatch(_ scratch: Scratch) throws -> Hotpatch {
        try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        let verifier = ChannelVerifier(channelDirectory: scratch.path + "/channel", trustedKeysDirectory: scratch.path + "/keys",
                                       storeDirectory: scratch.path + "/store")
        return try #require(try verifier.verify(highestAcceptedVersion: nil, now: Date()).hotpatches.first)
    }

    @Test func roundTrip_realTargetAndPatchObject_verifiesIntoTheHotpatchTheEngineApplies() throws {
        let scratch = try prepare()
        try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                           "--target", "target", "--patch", "fix.so", "--replace", "parse=parse_fixed", "--ref", "counter",
                           "--cve", "CVE-2025-1", "--description", "fix parse")
        let hotpatch = try verifiedHotpatch(scratch)
        let facts = try readelfFacts("parse", in: "target", bytesFrom: "target", scratch: scratch)
        let counter = try readelfFacts("counter", in: "target", bytesFrom: "target", scratch: scratch)
        #expect(hotpatch.id == "hp1" && hotpatch.baseline == "B1" && hotpatch.level == 1)
        let target = try #require(hotpatch.targets.first)
        #expect(target.buildID.description == facts.buildID && !facts.buildID.isEmpty)
        #expect(target.redirections == [FunctionRedirection(symbol: "parse", offset: facts.offset, size: facts.size,
                                                            sha256: facts.sha256, replacement: "parse_fixed")])
        #expect(target.references == [TargetSymbolReference(symbol: "counter", offset: counter.offset)])
        let patchBytes = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/fix.so"))
        let patchHash = String(try Shell.sh("sha256sum fix.so", in: scratch.path).prefix(64))
        #expect(target.patchObjectPath == scratch.path + "/store/objects/\(patchHash).so")
        #expect(try Data(contentsOf: URL(fileURLWithPath: target.patchObjectPath)) == patchBytes)
    }

    @Test func hotpatch_onStrippedTargetWithDebugFile_takesOffsetsFromTheDebugFile() throws {
        let scratch = try prepare()
        try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                           "--target", "target.stripped", "--debug-file", "target.debug", "--patch", "fix.so",
                           "--replace", "parse=parse_fixed", "--path-hint", "/usr/bin/target", "--ref", "counter")
        let hotpatch = try verifiedHotpatch(scratch)
        let facts = try readelfFacts("parse", in: "target", bytesFrom: "target.stripped", scratch: scratch)
        let target = try #require(hotpatch.targets.first)
        #expect(target.pathHint == "/usr/bin/target")
        #expect(target.buildID.description == facts.buildID)
        #expect(target.redirections.first?.offset == facts.offset)
        #expect(target.redirections.first?.sha256 == facts.sha256)
    }

    @Test func hotpatch_onStrippedSharedLibraryWithoutDebugFile_usesDynsym() throws {
        let scratch = try prepare()
        // Its own patch object: fix.so needs `counter`, which nothing a process mapping libdemo.so has
        // defines, so publishing it would be refused.
        try scratch.write("lib_fix.c", "int lib_fn_fixed(int x) { return x * 7; }\n")
        try Shell.sh("cc -shared -fPIC -O1 -Wl,--build-id -o lib_fix.so lib_fix.c", in: scratch.path)
        try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                           "--target", "libdemo.so.stripped", "--patch", "lib_fix.so", "--replace", "lib_fn=lib_fn_fixed")
        let facts = try readelfFacts("lib_fn", in: "libdemo.so.stripped", bytesFrom: "libdemo.so.stripped", scratch: scratch)
        let redirection = try #require(try verifiedHotpatch(scratch).targets.first?.redirections.first)
        #expect(redirection.offset == facts.offset && redirection.size == facts.size && redirection.sha256 == facts.sha256)
    }

    @Test func hotpatch_whenFunctionIsShorterThanTheJump_fails() throws {
        let scratch = try prepare()
        let result = try scratch.pack("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                      "--target", "target", "--patch", "fix.so", "--replace", "short_fn=other_fixed", "--ref", "counter")
        #expect(result.status != 0)
        #expect(result.stderr.contains("shorter than the 5-byte jump"))
        #expect(try scratch.index().releases.count == 1)
    }

    @Test func hotpatch_whenFunctionIsShorterThanAbsoluteJump_warns() throws {
        let scratch = try prepare()
        let result = try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                        "--target", "target", "--patch", "fix.so", "--replace", "mid_fn=other_fixed", "--ref", "counter")
        #expect(result.stderr.contains("warning: mid_fn is 6 bytes"))
    }

    @Test func hotpatch_whenCloneOfReplacedFunctionExists_warns() throws {
        let scratch = try prepare()
        let result = try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                        "--target", "target", "--patch", "fix.so", "--replace", "parse=parse_fixed", "--ref", "counter")
        #expect(result.stderr.contains("warning: parse.isra.0 is a GCC clone of parse"))
    }

    @Test func hotpatch_whenReplacementIsNotExported_fails() throws {
        let scratch = try prepare()
        let result = try scratch.pack("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "1",
                                      "--target", "target", "--patch", "fix.so", "--replace", "parse=missing_fixed", "--ref", "counter")
        #expect(result.status != 0)
        #expect(result.stderr.contains("missing_fixed"))
    }

    @Test func hotpatch_whenLevelIsNotAboveThePrevious_fails() throws {
        let scratch = try prepare()
        try scratch.packOK("hotpatch", "--channel", "channel", "--id", "hp1", "--baseline", "B1", "--level", "2",
                           "--target", "target", "--patch", "fix.so", "--replace", "parse=parse_fixed", "--ref", "counter")
        let result = try scratch.pack("hotpatch", "--channel", "channel", "--id", "hp2", "--baseline", "B1", "--level", "2",
                                      "--target", "target", "--patch", "fix.so", "--replace", "parse=parse_fixed", "--ref", "counter")
        #expect(result.status != 0)
        #expect(result.stderr.contains("not above level 2"))
    }
}
