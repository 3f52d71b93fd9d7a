import Foundation
import Testing
@testable import Artifact

/// Reading a kernel module's `.modinfo` and a kernel's build-id from its notes.
@Suite struct KernelModuleInfoTests {
    /// A relocatable object laid out as Kbuild lays out a module: `.modinfo` strings and a
    /// `.gnu.linkonce.this_module` section (where `struct module` sits in a real .ko).
    static func moduleSource(_ modinfo: [String], thisModule: Bool = true) -> String {
        let strings = modinfo.map { $0 + "\\0" }.joined()
        return """
        static const char modinfo[] __attribute__((section(".modinfo"), used, aligned(1))) = "\(strings)";
        \(thisModule ? #"static char this_module[64] __attribute__((section(".gnu.linkonce.this_module"), used));"# : "")
        int livepatch_marker(void) { return 1; }
        """
    }

    @Test func read_ofModuleObject_findsNameLivepatchFlagAndVermagicRelease() throws {
        let fixtures = try FixtureDirectory()
        let module = try fixtures.compile("lp.ko", source: Self.moduleSource(
            ["license=GPL", "livepatch=Y", "vermagic=6.1.0-57-amd64 SMP preempt mod_unload modversions ", "name=livepatch_sample"]),
            arguments: ["-c"])
        let info = try KernelModuleInfo.read(path: module)
        #expect(info.name == "livepatch_sample")
        #expect(info.isLivePatch)
        #expect(info.vermagicRelease == "6.1.0-57-amd64")
        #expect(info.value("license") == "GPL")
    }

    @Test func read_ofModuleWithoutLivepatchFlag_saysItIsNoLivePatch() throws {
        let fixtures = try FixtureDirectory()
        let module = try fixtures.compile("plain.ko", source: Self.moduleSource(["vermagic=6.1.0-57-amd64 SMP ", "name=plain"]),
                                          arguments: ["-c"])
        #expect(try !KernelModuleInfo.read(path: module).isLivePatch)
    }

    @Test func read_ofObjectWithoutModuleStructure_refusesAsNoKernelModule() throws {
        let fixtures = try FixtureDirectory()
        let object = try fixtures.compile("half.o", source: Self.moduleSource(["livepatch=Y", "name=x"], thisModule: false),
                                          arguments: ["-c"])
        #expect {
            try KernelModuleInfo.read(path: object)
        } throws: { error in
            guard case let ArtifactError.malformedELF(_, reason) = error else { return false }
            return reason.contains(".gnu.linkonce.this_module")
        }
    }

    @Test func read_ofSharedObject_refusesAsNotRelocatable() throws {
        let fixtures = try FixtureDirectory()
        let library = try fixtures.compile("lib.so", source: Self.moduleSource(["livepatch=Y", "name=x"]), arguments: ["-shared", "-fPIC"])
        #expect {
            try KernelModuleInfo.read(path: library)
        } throws: { error in
            guard case let ArtifactError.malformedELF(_, reason) = error else { return false }
            return reason.contains("ET_DYN")
        }
    }

    @Test func read_ofTextFile_refusesAsNotELF() throws {
        let fixtures = try FixtureDirectory()
        let path = fixtures.path("notes.txt")
        try Data("livepatch=Y\0name=x\0".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ArtifactError.self) { try KernelModuleInfo.read(path: path) }
    }

    @Test func parse_skipsPaddingAndStringsWithoutEquals() throws {
        let bytes = Array("\0\0name=a\0junk\0\0livepatch=Y\0".utf8)
        let info = try KernelModuleInfo.parse(section: bytes[...], path: "m.ko")
        #expect(info.fields.map(\.key) == ["name", "livepatch"])
        #expect(info.vermagicRelease == nil)
    }

    @Test func isSigned_seesTheAppendedSignatureMarker() {
        #expect(KernelModuleInfo.isSigned(tail: Array("xx~Module signature appended~\n".utf8)))
        #expect(!KernelModuleInfo.isSigned(tail: Array("~Module signature appended~".utf8)))
        #expect(!KernelModuleInfo.isSigned(tail: []))
    }

    /// One ELF note: header, name and descriptor, each padded to 4 bytes.
    static func note(name: String, type: UInt32, descriptor: [UInt8]) -> [UInt8] {
        func word(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        func padded(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4) }
        let nameBytes = Array(name.utf8) + [0]
        return word(UInt32(nameBytes.count)) + word(UInt32(descriptor.count)) + word(type) + padded(nameBytes) + padded(descriptor)
    }

    @Test func buildID_ofNoteSequence_isFoundAfterOtherNotes() throws {
        let id: [UInt8] = (0..<20).map { UInt8($0 * 11) }
        let notes = Self.note(name: "Xen", type: 6, descriptor: [1, 2, 3]) + Self.note(name: "Linux", type: 1, descriptor: Array("6.1.0".utf8))
            + Self.note(name: "GNU", type: 3, descriptor: id)
        #expect(try KernelBuildID.find(in: notes, path: "notes") == BuildID(bytes: id))
    }

    @Test func buildID_ofNotesWithoutOne_isNil() throws {
        #expect(try KernelBuildID.find(in: Self.note(name: "Linux", type: 1, descriptor: [0]), path: "notes") == nil)
    }

    @Test func buildID_ofTruncatedNotes_refuses() {
        let notes = Array(Self.note(name: "GNU", type: 3, descriptor: Array(repeating: 7, count: 20)).dropLast(6))
        #expect(throws: ArtifactError.self) { try KernelBuildID.find(in: notes, path: "notes") }
    }

    @Test func buildID_ofThisMachinesKernelNotes_isTheGNUNote() throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: "/sys/kernel/notes")))
        let id = try #require(try KernelBuildID.find(in: bytes, path: "/sys/kernel/notes"))
        // The kernel's build-id is a SHA-1 (20 bytes) and appears in the notes after "GNU\0".
        #expect(id.bytes.count == 20)
        let marker: [UInt8] = Array("GNU\0".utf8) + id.bytes
        #expect(bytes.indices.contains { bytes[$0...].starts(with: marker) })
    }

    @Test func buildID_ofELFFile_isItsBuildIDNote() throws {
        let fixtures = try FixtureDirectory()
        let program = try fixtures.compile("vmlinux", source: "int main(void) { return 0; }", arguments: ["-Wl,--build-id=sha1"])
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: program)))
        #expect(try KernelBuildID.find(in: bytes, path: program) == ELFFile.load(path: program).buildID)
    }
}
