import Foundation
import Testing

@Test func packBinary_isBuiltBesideTheTests() {
    // The CLI tests run the real binary; it sits in the same build products folder as the test bundle.
    #expect(FileManager.default.isExecutableFile(atPath: Products.hotpatchPack), "\(Products.hotpatchPack)")
}

/// The publisher's tool and the admin's client depend on the artifact and the system layer only:
/// no ptrace code may reach them (issue 9's rule; the C shim's symbols are all `cptrace_…`).
@Test(arguments: [Products.hotpatchPack, Products.agentctl])
func binary_holdsNoPtraceSymbol(_ path: String) async throws {
    // nm reads a debug build for seconds: off the cooperative threads, which other suites need.
    let symbols = try await Program.succeed("nm", ["--defined-only", path]).stdout
    let ptrace = symbols.split(separator: "\n").filter { $0.lowercased().contains("ptrace") }
    #expect(!symbols.isEmpty)
    #expect(ptrace.isEmpty, "\(path) links ptrace code: \(ptrace.prefix(5).joined(separator: "; "))")
}

/// Capstone, the publisher's disassembler, stays out of the host's binaries: neither the agent nor
/// agentctl links it or holds a symbol of it; hotpatch-pack, which disassembles, does (so the
/// probe finds it where it is).
@Test(arguments: [(Products.hotpatchAgent, false), (Products.agentctl, false), (Products.hotpatchPack, true)])
func binary_linksCapstoneOnlyInThePublishersTool(_ path: String, _ expected: Bool) async throws {
    let symbols = try await Program.succeed("nm", [path]).stdout.split(separator: "\n")
    let capstone = symbols.filter { $0.hasSuffix(" cs_disasm") || $0.hasSuffix(" cs_open") }
    let libraries = try await Program.succeed("ldd", [path]).stdout
    #expect(!symbols.isEmpty)
    #expect(capstone.isEmpty != expected, "\(path): Capstone symbols \(capstone.prefix(2))")
    #expect(libraries.contains("libcapstone") == expected, "\(path) needs: \(libraries)")
}

/// elfutils' libdw, `hotpatch-pack build`'s DWARF reader, is the publisher's too: hosts never need it.
@Test(arguments: [(Products.hotpatchAgent, false), (Products.agentctl, false), (Products.hotpatchPack, true)])
func binary_linksLibdwOnlyInThePublishersTool(_ path: String, _ expected: Bool) async throws {
    let libraries = try await Program.succeed("ldd", [path]).stdout
    #expect(libraries.contains("libdw.so") == expected, "\(path) needs: \(libraries)")
}
