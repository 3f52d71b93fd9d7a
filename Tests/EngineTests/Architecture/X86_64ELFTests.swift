import Architecture
import Testing

@Test func x86_64RelocationKind_appliesWhatAPositionIndependentObjectAndItsTargetThreadLocalsNeed() {
    #expect(X86_64.relocationKind(0) == RelocationKind.none)
    #expect(X86_64.relocationKind(1) == .symbolPlusAddend)
    #expect(X86_64.relocationKind(6) == .symbol && X86_64.relocationKind(7) == .symbol)
    #expect(X86_64.relocationKind(8) == .relative)
    #expect(X86_64.relocationKind(16) == .threadLocalModule)
    #expect(X86_64.relocationKind(17) == .threadLocalOffset)
    #expect(X86_64.relocationKind(18) == .threadPointerOffset)
    for refused: UInt32 in [2, 4, 5, 19, 22, 36, 37, 42, 200] {
        #expect(X86_64.relocationKind(refused) == nil, "type \(refused)")
    }
}

@Test func x86_64RelocationName_usesThePsABINamesAndSaysWhyARefusedOneIs() {
    #expect(X86_64.relocationName(8) == "R_X86_64_RELATIVE")
    #expect(X86_64.relocationName(7) == "R_X86_64_JUMP_SLOT")
    #expect(X86_64.relocationName(200) == "type 200")
    #expect(X86_64.relocationRefusal(36).contains("-mtls-dialect=gnu2"))
    #expect(X86_64.threadPointerOffset(blockOffset: 0x80, variableOffset: 0x10) == UInt64(bitPattern: -0x70))
    #expect(X86_64.relocationRefusal(37).hasPrefix("GNU indirect function"))
    #expect(X86_64.relocationRefusal(2).contains("-fPIC"))
}

@Test func x86_64Constants_matchTheKernelAndTheELFSpecification() {
    #expect(X86_64.elfMachine == 62 && X86_64.elfMachineName == "EM_X86_64")
    // AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    #expect(X86_64.auditArchitecture == UInt32(X86_64.elfMachine) | 0x8000_0000 | 0x4000_0000)
    #expect(X86_64.systemCalls.mmap == 9 && X86_64.systemCalls.openat == 257 && X86_64.systemCalls.memfdCreate == 319)
    #expect(X86_64.pageSize == 4096)
}
