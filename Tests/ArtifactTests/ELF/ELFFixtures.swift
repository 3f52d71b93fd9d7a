import Foundation
import Testing
@testable import Artifact

/// A temporary directory for compiled fixtures, removed when the test is done with it.
final class FixtureDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("elf-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes `source` as NAME.c and compiles it with `cc ARGS -o NAME`; returns the output path.
    @discardableResult
    func compile(_ name: String, source: String, arguments: [String]) throws -> String {
        let sourcePath = path(name + ".c")
        try source.write(toFile: sourcePath, atomically: true, encoding: .utf8)
        let output = path(name)
        try run("/usr/bin/cc", arguments + ["-o", output, sourcePath])
        return output
    }

    /// Runs a tool, failing the test with its output when it exits non-zero.
    func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError(message: "\(tool) \(arguments.joined(separator: " ")) failed: \(String(decoding: output, as: UTF8.self))")
        }
    }

    /// Runs a tool and returns its standard output.
    func output(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
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
