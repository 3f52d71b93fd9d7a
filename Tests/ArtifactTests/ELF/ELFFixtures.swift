import Foundation
import Testing
@testable import Artifact

/// A temporary directory for the ELF tests' compiled programs, removed when the test is done with it.
final class FixtureDirectory {
    private let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory(prefix: "elf-tests") }

    func path(_ name: String) -> String { directory.file(name) }

    /// Writes `source` as NAME.c and compiles it with `cc ARGS -o NAME`; returns the output path.
    @discardableResult
    func compile(_ name: String, source: String, arguments: [String]) throws -> String {
        try FixtureBuilder.compile(text: source, to: path(name), flags: arguments)
    }

    /// Runs a tool, failing the test with its output when it exits non-zero.
    func run(_ tool: String, _ arguments: [String]) throws {
        try Program.succeed(tool, arguments)
    }

    /// Runs a tool and returns its standard output.
    func output(_ tool: String, _ arguments: [String]) throws -> String {
        try Program.run(tool, arguments).stdout
    }
}

/// Small C programs used across the ELF tests.
enum FixtureSource {
    static let program = """
    #include <stdio.h>
    static int helper(int x) { return x * 7 + 3; }
    int counter = 5;
    __attribute__((noinline)) int compute(int x) { return helper(x) + counter; }
    __attribute__((noinline)) int tiny(void) { return 1; }
    int main(int argc, char **argv) { printf("%d\\n", compute(argc)); return tiny(); }
    """

    static let library = """
    #include <stdio.h>
    #include <string.h>
    int lib_counter = 1;
    int lib_add(int a, int b) { return a + b + lib_counter; }
    size_t lib_len(const char *s) { return strlen(s); }
    void lib_print(const char *s) { puts(s); }
    """

    static let patch = """
    #include <stdio.h>
    extern int counter;
    int fixed_state = 42;
    int *state_pointer = &fixed_state;
    int compute_fixed(int x) { return x * 7 + 4 + counter; }
    int calls_own(int x) { return compute_fixed(x) + *state_pointer; }
    void say(const char *s) { puts(s); }
    """
}

/// Asserts that `body` throws `ArtifactError.malformedELF` whose reason contains `fragment`.
func expectMalformed(_ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected malformedELF containing '\(fragment)', got success", sourceLocation: sourceLocation)
    } catch let ArtifactError.malformedELF(_, reason) {
        #expect(reason.contains(fragment), "reason was: \(reason)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected malformedELF containing '\(fragment)', got \(error)", sourceLocation: sourceLocation)
    }
}

/// Asserts that `body` throws `ArtifactError.unsupportedPatchObject` whose reason contains `fragment`.
func expectUnsupported(_ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected unsupportedPatchObject containing '\(fragment)', got success", sourceLocation: sourceLocation)
    } catch let ArtifactError.unsupportedPatchObject(_, reason) {
        #expect(reason.contains(fragment), "reason was: \(reason)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected unsupportedPatchObject containing '\(fragment)', got \(error)", sourceLocation: sourceLocation)
    }
}

/// Little-endian patching of crafted inputs.
extension Array where Element == UInt8 {
    mutating func put<Value: FixedWidthInteger>(_ value: Value, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { raw in
            for (index, byte) in raw.enumerated() { self[offset + index] = byte }
        }
    }

    func get<Value: FixedWidthInteger>(_: Value.Type, at offset: Int) -> Value {
        var value: Value = 0
        for index in 0..<MemoryLayout<Value>.size { value |= Value(self[offset + index]) << (8 * index) }
        return value
    }
}
