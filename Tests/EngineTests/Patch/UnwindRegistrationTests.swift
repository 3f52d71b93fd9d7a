import Architecture
import Artifact
import Foundation
import HotpatchFixtures
import Testing
@testable import Engine

extension LivePatchTests {
    /// A C++ exception thrown below a replacement function unwinds through its frame: the image's
    /// tables are registered with the process's libgcc_s when it is loaded.
    @Test func apply_whenAnExceptionPassesThroughTheReplacement_isCaughtAsBeforeAndTheProcessLives() throws {
        let victimPath = try Live.builder.build("cxx_thrower.cpp", flags: ["-O1", "-rdynamic", "-Wl,--no-as-needed", "-lstdc++"])
        let patchPath = try Live.builder.patchObject("patch_cxx_thrower.cpp")
        let plan = try RedirectionPlanner.plan(target: ELFFile.load(path: victimPath), debugFile: nil,
                                               patchObject: PatchObject(path: patchPath),
                                               replacements: [(symbol: "through", replacement: "through_fixed")], references: [])
        let target = HotpatchTarget(buildID: plan.buildID, pathHint: victimPath, patchObjectPath: patchPath,
                                    redirections: plan.redirections, references: plan.references)
        let victim = try RunningProcess(victimPath, [])
        defer { victim.stop() }
        _ = try victim.waitForLine(timeout: 10) { $0 == "caught 1" }

        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied)
        _ = try victim.waitForLine(timeout: 5) { $0 == "caught 2" }
        _ = try victim.freshLine()
        #expect(try victim.freshLine() == "caught 2")
        #expect(victim.isAlive)

        let reverted = try Live.reconcile(victim, desired: nil, known: [target])
        #expect(reverted.outcome == .reverted)
        _ = try victim.waitForLine(timeout: 5) { $0 == "caught 1" }
        #expect(victim.isAlive)
    }
}

@Test func unwinderRegistry_isFoundInThisMachinesLibgccInItsWritableData() throws {
    let path = "/lib/x86_64-linux-gnu/libgcc_s.so.1"
    let elf = try ELFFile.load(path: path)
    let function = try #require(try elf.dynamicSymbols().first { $0.name == "__register_frame_info_bases" })
    let bytes = try elf.bytes(atVirtualAddress: function.value, count: Int(function.size))
    let layout = try #require(HostArchitecture.unwinderRegistry(inRegisterFunction: bytes, at: function.value))
    let writable = elf.programHeaders.filter { $0.type == ELFProgramHeader.PT_LOAD && $0.flags.contains(.writable) }
    for address in [layout.lock, layout.listHead, layout.anyRegisteredFlag] {
        #expect(writable.contains { address >= $0.virtualAddress && address < $0.virtualAddress + $0.memorySize },
                "0x\(String(address, radix: 16)) is not in libgcc_s's writable data")
    }
    #expect(Set([layout.lock, layout.listHead, layout.anyRegisteredFlag]).count == 3)
    // GCC's "encoding omitted, nothing sorted" flags.
    #expect(layout.initialFlags == 0x7F8)
    // Any other code is not recognised: nothing is ever written on a guess.
    var altered = bytes
    if let index = (0..<(altered.count - 4)).first(where: { Array(altered[$0..<($0 + 4)]) == [0x48, 0x89, 0x43, 0x28] }) {
        altered[index + 3] = 0x30
    }
    #expect(HostArchitecture.unwinderRegistry(inRegisterFunction: altered, at: function.value) == nil)
}

@Test func unwinderRecord_isGCCsObjectLayout() {
    let layout = UnwinderRegistryLayout(lock: 0x100, listHead: 0x108, anyRegisteredFlag: 0x110, initialFlags: 0x7F8)
    let record = layout.record(table: 0x7000_1000, next: 0x7000_2000)
    #expect(record.count == UnwinderRegistryLayout.recordSize)
    let words = stride(from: 0, to: 48, by: 8).map { offset in
        record[offset..<(offset + 8)].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
    }
    #expect(words == [UInt64.max, 0, 0, 0x7000_1000, 0x7F8, 0x7000_2000])
}

@Test func isUnwinderLibrary_matchesLibgccByItsLastComponentOnly() {
    #expect(UnwindRegistration.isUnwinderLibrary("/lib/x86_64-linux-gnu/libgcc_s.so.1"))
    #expect(UnwindRegistration.isUnwinderLibrary("/usr/lib/libgcc_s.so"))
    #expect(UnwindRegistration.isUnwinderLibrary("libgcc_s.so.1"))
    #expect(!UnwindRegistration.isUnwinderLibrary("/opt/libgcc_s.so.1/libc.so.6"))
    #expect(!UnwindRegistration.isUnwinderLibrary("/lib/libgcc_s_seh.so.1"))
    #expect(!UnwindRegistration.isUnwinderLibrary("/lib/libgcc_s.s"))
    #expect(!UnwindRegistration.isUnwinderLibrary("/lib/"))
    #expect(!UnwindRegistration.isUnwinderLibrary(""))
}
