@testable import Pack
import Testing

/// C++ through the generator: inline functions and template instances are compiled into every
/// object that uses them (weak symbols in COMDAT groups) and the linker keeps one copy, so the
/// patch carries one replacement too, and exceptions still unwind through it.
@Suite(.serialized) struct CxxGeneratorTests {
    /// The same header text in two files, as an `#include` would make it.
    static func header(_ twice: String) -> String {
        """
        #include <stdexcept>
        template <typename T> __attribute__((noinline)) T twice(T v) { \(twice) }
        struct Meter { int limit; __attribute__((noinline)) int read(int v) const { if (v < 0) throw std::runtime_error("negative"); return v > limit ? limit : v; } };

        """
    }

    static let api = """
        extern "C" int api(int v) { Meter m{100}; try { return twice(v) + m.read(v) + m.read(-1); } catch (const std::exception &) { return twice(v) + m.read(v) + 1; } }

        """
    static let other = "int other(int v) { Meter m{50}; return m.read(v) + twice(v); }\n"

    @Test func changedTemplateInstance_inTwoObjects_isCarriedOnce_andTheLiveProcessRunsIt() throws {
        let fixture = try GeneratorCase(files: [
            "api.cpp": (Self.header("return v * 2;") + Self.api, Self.header("return v > 1000 ? -1 : v * 2;") + Self.api),
            "other.cpp": (Self.header("return v * 2;") + Self.other, Self.header("return v > 1000 ? -1 : v * 2;") + Self.other),
        ], flags: "-g")
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["_Z5twiceIiET_S0_"])
        #expect(patch.changes.map(\.kind) == [.changedFunction])
        let program = try fixture.program(calling: "api(2000)", declaring: "int api(int)")
        // The replaced template instance is reached from api, which also throws and catches around it.
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=4101", after: "value=100")
    }

    @Test func changedInlineMemberFunction_thatThrows_isReplaced_andItsExceptionStillReachesTheCaller() throws {
        let throwing = "if (v < 0) throw std::runtime_error(\"negative\"); return v > limit ? limit : v;"
        let fixed = "if (v < 0) throw std::runtime_error(\"negative\"); return v > limit - 1 ? limit - 1 : v;"
        let fixture = try GeneratorCase(files: [
            "api.cpp": (Self.header("return v * 2;") + Self.api, (Self.header("return v * 2;") + Self.api).replacingOccurrences(of: throwing, with: fixed)),
            "other.cpp": (Self.header("return v * 2;") + Self.other, (Self.header("return v * 2;") + Self.other).replacingOccurrences(of: throwing, with: fixed)),
        ], flags: "-g")
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["_ZNK5Meter4readEi"])
        let program = try fixture.program(calling: "api(200)", declaring: "int api(int)")
        // read(-1) throws in both versions: once patched, from the replacement, and api catches it
        // through the replacement's unwind table (else the process would terminate).
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=501", after: "value=500")
    }
}
