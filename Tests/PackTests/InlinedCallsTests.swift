import Foundation
import Testing
@testable import Pack

/// The DWARF inline reader (elfutils' libdw): on a fixture compiled with -O2 -g, which functions
/// each function has inlined into it, nested inlining included, in a `.o` (whose DWARF libdwfl
/// relocates) and in the linked shared object.
@Suite struct InlinedCallsTests {
    static let source = """
        static inline __attribute__((always_inline)) int inner(int x) { return x * 7 + 1; }
        static inline __attribute__((always_inline)) int helper(int x) { return inner(x) ^ (x >> 2); }
        static inline __attribute__((always_inline)) int other_helper(int x) { return x - 5; }
        __attribute__((noinline)) int caller_one(int x) { return helper(x) + 3; }
        __attribute__((noinline)) int caller_two(int x) { return helper(x + 1) * other_helper(x); }
        __attribute__((noinline)) int plain(int x) { return x + 11; }
        int uses_all(int x) { return caller_one(x) + caller_two(x) + plain(x); }

        """

    func build(_ scratch: Scratch) throws {
        try scratch.write("inline.c", Self.source)
        try Shell.sh("cc -O2 -g -fPIC -c inline.c -o inline.o && cc -shared -o libinline.so inline.o", in: scratch.path)
    }

    @Test(arguments: ["inline.o", "libinline.so"])
    func read_o2Fixture_mapsEachCallerToItsInlinedHelpersNestedIncluded(file: String) throws {
        let scratch = try Scratch()
        try build(scratch)
        let calls = try InlinedCalls.read(path: scratch.path + "/" + file)
        #expect(calls.callees["caller_one"] == ["helper", "inner"])
        #expect(calls.callees["caller_two"] == ["helper", "inner", "other_helper"])
        #expect(calls.callees["plain"] == [])
        #expect(calls.callers(of: "inner") == ["caller_one", "caller_two"])
        #expect(calls.callers(of: "other_helper") == ["caller_two"])
        // always_inline helpers have no code of their own.
        #expect(calls.callees["helper"] == nil)
    }

    @Test func read_fileWithoutDWARF_saysToCompileWithG() throws {
        let scratch = try Scratch()
        try scratch.write("plain.c", "int f(int x) { return x; }\n")
        try Shell.sh("cc -O2 -c plain.c -o plain.o", in: scratch.path)
        #expect {
            try InlinedCalls.read(path: scratch.path + "/plain.o")
        } throws: { error in
            "\(error)".contains("Failed to read the DWARF of \(scratch.path)/plain.o") && "\(error)".contains("compile with -g")
        }
    }
}
