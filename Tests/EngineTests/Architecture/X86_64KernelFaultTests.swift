import Architecture
import Testing

// The message part of /dev/kmsg records of real faults, as a 6.18 x86-64 kernel prints them; the
// record header and the reader are tested with KernelFaultLog in AgentCoreTests.

@Test func x86_64KernelFault_segfaultLine_givesThreadKindInstructionPointerAndMapping() throws {
    let line = try #require(X86_64.parseKernelFault(
        "segv[4411]: segfault at 0 ip 0000556a9d625139 sp 00007fff74e1ebe0 error 6 in segv[1139,556a9d625000+1000] likely on CPU 1 (core 1, socket 0)"))
    #expect(line == KernelFaultLine(command: "segv", thread: 4411, kind: "segfault", instructionPointer: 0x556a_9d62_5139,
                                    mapping: .init(name: "segv", start: 0x556a_9d62_5000, size: 0x1000)))
}

@Test func x86_64KernelFault_trapLine_givesTheTrapsDescriptionAsKind() throws {
    let line = try #require(X86_64.parseKernelFault(
        "traps: ill[4412] trap invalid opcode ip:55c28e58a12d sp:7ffd9b85fcd0 error:0 in ill[112d,55c28e58a000+1000]"))
    #expect(line == KernelFaultLine(command: "ill", thread: 4412, kind: "trap invalid opcode", instructionPointer: 0x55c2_8e58_a12d,
                                    mapping: .init(name: "ill", start: 0x55c2_8e58_a000, size: 0x1000)))
}

@Test(arguments: ["process 'x' started with executable stack", "traps: ill[4412] trap invalid opcode ip:55c28e58a12d sp:7ffd9b85fcd0",
                  "a[1]: segfault at 0 ip 1 sp 2 error 4 in x[2]: segfault at 0 ip 1 sp 2 error 4"])
func x86_64KernelFault_otherCutOrAmbiguousLines_areRefused(message: String) {
    #expect(X86_64.parseKernelFault(Substring(message)) == nil)
}

@Test func x86_64KernelFault_markers_appearInBothFormats() {
    let lines = ["segv[1]: segfault at 0 ip 1 sp 2 error 4", "traps: ill[2] trap invalid opcode ip:1 sp:2 error:0"]
    for line in lines {
        #expect(X86_64.kernelFaultMarkers.contains { line.contains($0) }, "\(line)")
        #expect(X86_64.parseKernelFault(Substring(line)) != nil, "\(line)")
    }
}
