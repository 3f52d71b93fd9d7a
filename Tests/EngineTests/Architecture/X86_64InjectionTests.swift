import Architecture
import Testing

/// A register block of `X86_64.registerWordCount` words, as the tests fill it.
private struct Words: RegisterWords {
    var words = [UInt64](repeating: 0, count: X86_64.registerWordCount)
    subscript(word index: Int) -> UInt64 {
        get { words[index] }
        set { words[index] = newValue }
    }

    /// A thread stopped with `rax`, `origRAX` and `rip`, every other word distinct.
    init(rax: UInt64 = 0, origRAX: UInt64 = .max, rip: UInt64 = 0) {
        for index in words.indices { words[index] = 0x1000 + UInt64(index) }
        words[X86_64.Word.rax] = rax
        words[X86_64.Word.origRAX] = origRAX
        words[X86_64.Word.rip] = rip
    }
}

@Test func resumed_whenStoppedInRestartableCall_reexecutesTheCall() {
    for code in [-512, -513, -514] {
        let stopped = Words(rax: UInt64(bitPattern: Int64(code)), origRAX: 0, rip: 0x1002)
        #expect(X86_64.systemCallRestartedOnResume(stopped) == 0, "rax \(code)")
        let resumed = X86_64.resumed(stopped)
        #expect(resumed[word: X86_64.Word.rax] == 0 && resumed[word: X86_64.Word.rip] == 0x1000, "rax \(code)")
        #expect(resumed[word: X86_64.Word.origRAX] == .max, "no call left for the kernel to restart again")
    }
    let read = X86_64.resumed(Words(rax: UInt64(bitPattern: -512), origRAX: 0, rip: 0x7f00_0000_1234))
    #expect(read[word: X86_64.Word.rax] == 0 && read[word: X86_64.Word.rip] == 0x7f00_0000_1232)
}

@Test func resumed_whenStoppedInNanosleep_continuesWithRestartSyscall() {
    let stopped = Words(rax: UInt64(bitPattern: -516), origRAX: 35, rip: 0x2002)
    #expect(X86_64.systemCallRestartedOnResume(stopped) == 219)
    let resumed = X86_64.resumed(stopped)
    #expect(resumed[word: X86_64.Word.rax] == 219 && resumed[word: X86_64.Word.rip] == 0x2000)
}

@Test func resumed_outsideAnInterruptedCall_resumesWhereTheThreadWas() {
    // Not in a system call (orig_rax -1), even with a restart-like rax; a finished call with an
    // ordinary result; -515 (not a restart code).
    for (rax, orig) in [(UInt64(bitPattern: -512), UInt64.max), (7, 0), (UInt64(bitPattern: -515), 0)] {
        let stopped = Words(rax: rax, origRAX: orig, rip: 0x3000)
        #expect(X86_64.systemCallRestartedOnResume(stopped) == nil)
        var expected = stopped
        expected[word: X86_64.Word.origRAX] = .max
        #expect(X86_64.resumed(stopped).words == expected.words, "rax \(Int64(bitPattern: rax)), orig_rax \(orig)")
    }
}

@Test func prepareSystemCall_setsNumberArgumentsAndInstructionPointerAndNoPendingCall() {
    var registers = Words(rax: 5, origRAX: 7, rip: 0x4000)
    X86_64.prepareSystemCall(&registers, number: 9, arguments: [1, 2, 3, 4], at: 0x7000)
    #expect(registers[word: X86_64.Word.rax] == 9 && registers[word: X86_64.Word.origRAX] == .max)
    #expect(registers[word: X86_64.Word.rip] == 0x7000)
    #expect((0..<6).map { X86_64.systemCallArgument(registers, $0) } == [1, 2, 3, 4, 0, 0])
    #expect([X86_64.Word.rdi, X86_64.Word.rsi, X86_64.Word.rdx, X86_64.Word.r10].map { registers[word: $0] } == [1, 2, 3, 4])
    #expect(X86_64.currentSystemCall(registers) == nil)
}

@Test func replaceEnteringSystemCall_changesTheCallButNotWhereTheThreadReturns() {
    var registers = Words(rax: UInt64(bitPattern: -38), origRAX: 35, rip: 0x5002)
    X86_64.replaceEnteringSystemCall(&registers, number: 9, arguments: [0, 4096, 5, 0x22, 11, 12])
    #expect(X86_64.currentSystemCall(registers) == 9)
    #expect(registers[word: X86_64.Word.rip] == 0x5002)
    #expect(registers[word: X86_64.Word.r8] == 11 && registers[word: X86_64.Word.r9] == 12)
}

@Test func injectionStub_startsWithSyscallAndEndsWithTheResumedState() {
    var stopped = Words(rax: UInt64(bitPattern: -514), origRAX: 7, rip: 0x5555_0000_1236)
    stopped[word: X86_64.Word.rsp] = 0x7ffd_0000_1000
    stopped[word: X86_64.Word.eflags] = 0x246
    let bytes = X86_64.injectionStub(resuming: stopped, signalMask: 0x8000_0000_0000_0001)
    #expect(Array(bytes.prefix(2)) == X86_64.systemCallInstruction)
    func word(_ at: Int) -> UInt64 { bytes[at..<at + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
    let slots = bytes.count - InjectionStubCode.slotCount * 8
    #expect(slots % 8 == 0)
    #expect(word(slots) == 0x8000_0000_0000_0001)
    #expect(word(slots + 8) == 0x246)
    let resumed = X86_64.resumed(stopped)
    #expect((0..<15).map { word(slots + 16 + $0 * 8) } == InjectionStubCode.registerOrder.map { resumed[word: $0] })
    #expect(word(slots + 16) == 7, "rax holds the restarted call's number")
    #expect(word(slots + 17 * 8) == 0x7ffd_0000_1000)
    #expect(word(slots + 18 * 8) == 0x5555_0000_1234, "rip is back on the interrupted syscall")
    // The stub fits in a page after the offset the Engine writes it at (0xE00).
    #expect(UInt64(bytes.count) + 0xE00 <= X86_64.pageSize)
}

@Test func injectionStub_instructionsAddressTheirSlots() {
    let bytes = InjectionStubCode.encode(registers: Array(repeating: 0, count: 15), stackPointer: 0, flags: 0,
                                         instructionPointer: 0, signalMask: 0)
    let slots = bytes.count - InjectionStubCode.slotCount * 8
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

@Test func injectionStackPointer_isPastTheRedZoneAndAligned() {
    for sp: UInt64 in [0x7ffd_0000_1000, 0x7ffd_0000_1008, 0x7ffd_0000_10ff] {
        let stub = X86_64.injectionStackPointer(below: sp)
        #expect(stub % 16 == 0 && sp - stub >= 128 + 8, "sp 0x\(String(sp, radix: 16))")
    }
}
