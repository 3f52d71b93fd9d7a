#if arch(x86_64)
import Architecture
import CPtrace
import Testing
@testable import Engine

/// The word indices `X86_64` names must be where <sys/user.h> puts each field of
/// `struct user_regs_struct`, the block PTRACE_GETREGS fills.
@Test func x86_64Words_matchTheOffsetsOfUserRegsStruct() {
    typealias Regs = cptrace_regs
    func word(_ field: PartialKeyPath<Regs>) -> Int {
        let offset = MemoryLayout<Regs>.offset(of: field) ?? -8
        #expect(offset >= 0 && offset % 8 == 0, "a stored field, on a word boundary")
        return offset / 8
    }
    let expected: [(PartialKeyPath<Regs>, Int, String)] = [
        (\Regs.r15, X86_64.Word.r15, "r15"), (\Regs.r14, X86_64.Word.r14, "r14"), (\Regs.r13, X86_64.Word.r13, "r13"),
        (\Regs.r12, X86_64.Word.r12, "r12"), (\Regs.rbp, X86_64.Word.rbp, "rbp"), (\Regs.rbx, X86_64.Word.rbx, "rbx"),
        (\Regs.r11, X86_64.Word.r11, "r11"), (\Regs.r10, X86_64.Word.r10, "r10"), (\Regs.r9, X86_64.Word.r9, "r9"),
        (\Regs.r8, X86_64.Word.r8, "r8"), (\Regs.rax, X86_64.Word.rax, "rax"), (\Regs.rcx, X86_64.Word.rcx, "rcx"),
        (\Regs.rdx, X86_64.Word.rdx, "rdx"), (\Regs.rsi, X86_64.Word.rsi, "rsi"), (\Regs.rdi, X86_64.Word.rdi, "rdi"),
        (\Regs.orig_rax, X86_64.Word.origRAX, "orig_rax"), (\Regs.rip, X86_64.Word.rip, "rip"),
        (\Regs.cs, X86_64.Word.cs, "cs"), (\Regs.eflags, X86_64.Word.eflags, "eflags"),
        (\Regs.rsp, X86_64.Word.rsp, "rsp"), (\Regs.ss, X86_64.Word.ss, "ss"),
    ]
    for (field, index, name) in expected {
        #expect(word(field) == index, "\(name)")
    }
    #expect(MemoryLayout<Regs>.size == X86_64.registerWordCount * 8)
    #expect(ThreadRegisters.wordCount == HostArchitecture.registerWordCount)
    #expect(HostArchitecture.instructionPointerWord == word(\Regs.rip))
    #expect(HostArchitecture.stackPointerWord == word(\Regs.rsp))
}

@Test func threadRegisters_readAndWriteTheWordsOfTheCStruct() {
    var raw = cptrace_regs()
    raw.rip = 0x1234
    raw.orig_rax = 39
    raw.r9 = 0x99
    var registers = ThreadRegisters(raw: raw)
    #expect(registers.instructionPointer == 0x1234)
    #expect(registers.currentSystemCall == 39)
    #expect(HostArchitecture.systemCallArgument(registers, 5) == 0x99)
    registers.stackPointer = 0x7ffd_0000_0000
    registers[word: X86_64.Word.rax] = UInt64(bitPattern: -2)
    #expect(registers.systemCallResult == -2)
    #expect(registers.stackPointer == 0x7ffd_0000_0000)
}
#endif
