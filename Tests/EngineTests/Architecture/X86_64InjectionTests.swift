import Testing
@testable import Engine

@Test func stubResume_whenStoppedInRestartableCall_reexecutesTheCall() {
    for code in [-512, -513, -514] {
        let resumed = InjectionStub.resume(rax: UInt64(bitPattern: Int64(code)), originalRAX: 0, instructionPointer: 0x1002)
        #expect(resumed.rax == 0 && resumed.instructionPointer == 0x1000, "rax \(code)")
    }
    let read = InjectionStub.resume(rax: UInt64(bitPattern: -512), originalRAX: 0, instructionPointer: 0x7f00_0000_1234)
    #expect(read == (0, 0x7f00_0000_1232))
}

@Test func stubResume_whenStoppedInNanosleep_continuesWithRestartSyscall() {
    let resumed = InjectionStub.resume(rax: UInt64(bitPattern: -516), originalRAX: 35, instructionPointer: 0x2002)
    #expect(resumed == (219, 0x2000))
}

@Test func stubResume_outsideAnInterruptedCall_resumesWhereTheThreadWas() {
    // Not in a system call (orig_rax -1), even with a restart-like rax.
    #expect(InjectionStub.resume(rax: UInt64(bitPattern: -512), originalRAX: .max, instructionPointer: 0x3000) == (UInt64(bitPattern: -512), 0x3000))
    // A finished call with an ordinary result, and -515 (not a restart code).
    #expect(InjectionStub.resume(rax: 7, originalRAX: 0, instructionPointer: 0x3000) == (7, 0x3000))
    #expect(InjectionStub.resume(rax: UInt64(bitPattern: -515), originalRAX: 0, instructionPointer: 0x3000) == (UInt64(bitPattern: -515), 0x3000))
}

@Test func stubEncoding_startsWithSyscallAndEndsWithTheSavedBlock() {
    let resume = InjectionStub.Resume(registers: (1...15).map { UInt64($0) * 0x1111 }, stackPointer: 0x7ffd_0000_1000,
                                      flags: 0x246, instructionPointer: 0x5555_0000_1234)
    let bytes = InjectionStub(resume: resume, signalMask: 0x8000_0000_0000_0001).encode()
    #expect(Array(bytes.prefix(2)) == [0x0F, 0x05])
    func word(_ at: Int) -> UInt64 { bytes[at..<at + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
    let slots = bytes.count - 19 * 8
    #expect(slots % 8 == 0)
    #expect(word(slots) == 0x8000_0000_0000_0001)
    #expect(word(slots + 8) == 0x246)
    #expect((0..<15).map { word(slots + 16 + $0 * 8) } == resume.registers)
    #expect(word(slots + 17 * 8) == 0x7ffd_0000_1000)
    #expect(word(slots + 18 * 8) == 0x5555_0000_1234)
    // The stub fits in the marker page after its offset.
    #expect(UInt64(bytes.count) + InjectionStub.offsetInMarkerPage <= PatchImageMarker.pageSize)
}

@Test func stubEncoding_instructionsAddressTheirSlots() {
    let stub = InjectionStub(resume: .init(registers: Array(repeating: 0, count: 15), stackPointer: 0, flags: 0,
                                           instructionPointer: 0), signalMask: 0)
    let bytes = stub.encode()
    let slots = bytes.count - 19 * 8
    func target(ofFieldAt at: Int) -> Int {
        let displacement = bytes[at..<at + 4].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        return at + 4 + Int(displacement)
    }
    // syscall; mov eax,14; mov edi,2; lea rsi,[rip+mask] (field at 2+5+5+3).
    #expect(Array(bytes[2..<14]) == [0xB8, 14, 0, 0, 0, 0xBF, 2, 0, 0, 0, 0x48, 0x8D])
    #expect(target(ofFieldAt: 15) == slots)
    // xor edx,edx; mov r10d,8; syscall; push [rip+flags]; popfq.
    #expect(Array(bytes[19..<29]) == [0x31, 0xD2, 0x41, 0xBA, 8, 0, 0, 0, 0x0F, 0x05])
    #expect(Array(bytes[29..<31]) == [0xFF, 0x35] && target(ofFieldAt: 31) == slots + 8)
    #expect(bytes[35] == 0x9D)
    // mov rax,[rip+slot2] first, mov r15,[rip+slot16] last, then mov rsp and jmp.
    #expect(Array(bytes[36..<39]) == [0x48, 0x8B, 0x05] && target(ofFieldAt: 39) == slots + 16)
    let r15 = 36 + 14 * 7
    #expect(Array(bytes[r15..<r15 + 3]) == [0x4C, 0x8B, 0x3D] && target(ofFieldAt: r15 + 3) == slots + 16 * 8)
    #expect(Array(bytes[r15 + 7..<r15 + 10]) == [0x48, 0x8B, 0x25] && target(ofFieldAt: r15 + 10) == slots + 17 * 8)
    #expect(Array(bytes[r15 + 14..<r15 + 16]) == [0xFF, 0x25] && target(ofFieldAt: r15 + 16) == slots + 18 * 8)
}
