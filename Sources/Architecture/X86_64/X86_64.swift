/// 64-bit x86 (AMD64) under Linux: the ELF psABI, the system call ABI, the kernel's register block
/// and restart rules, and the jumps and stub the runtime writes. The only place these facts live.
public enum X86_64: Architecture {
    // MARK: ELF objects

    /// EM_X86_64.
    public static let elfMachine: UInt16 = 62
    /// "EM_X86_64".
    public static let elfMachineName = "EM_X86_64"

    /// R_X86_64_NONE, _64, _GLOB_DAT, _JUMP_SLOT and _RELATIVE: what a `cc -shared -fPIC` object
    /// needs (GLOB_DAT and JUMP_SLOT store the symbol's address alone); and for the target's
    /// thread-locals, _DTPMOD64 and _DTPOFF64 (global-dynamic) and _TPOFF64 (initial-exec).
    public static func relocationKind(_ type: UInt32) -> RelocationKind? {
        switch type {
        case 0: return RelocationKind.none
        case 1: return .symbolPlusAddend
        case 6, 7: return .symbol
        case 8: return .relative
        case 16: return .threadLocalModule
        case 17: return .threadLocalOffset
        case 18: return .threadPointerOffset
        default: return nil
        }
    }

    /// R_X86_64_IRELATIVE.
    public static let indirectRelativeRelocationType: UInt32 = 37

    /// TLS variant II: the static blocks lie below the thread pointer, a module's block at
    /// `tp - l_tls_offset`, so a variable is `offset - l_tls_offset` from it.
    public static func threadPointerOffset(blockOffset: UInt64, variableOffset: UInt64) -> UInt64 {
        variableOffset &- blockOffset
    }

    private static let relocationNames: [UInt32: String] = [
        0: "NONE", 1: "64", 2: "PC32", 3: "GOT32", 4: "PLT32", 5: "COPY", 6: "GLOB_DAT", 7: "JUMP_SLOT",
        8: "RELATIVE", 9: "GOTPCREL", 10: "32", 11: "32S", 12: "16", 13: "PC16", 14: "8", 15: "PC8",
        16: "DTPMOD64", 17: "DTPOFF64", 18: "TPOFF64", 19: "TLSGD", 20: "TLSLD", 21: "DTPOFF32",
        22: "GOTTPOFF", 23: "TPOFF32", 24: "PC64", 25: "GOTOFF64", 26: "GOTPC32", 27: "GOT64",
        28: "GOTPCREL64", 29: "GOTPC64", 30: "GOTPLT64", 31: "PLTOFF64", 32: "SIZE32", 33: "SIZE64",
        34: "GOTPC32_TLSDESC", 35: "TLSDESC_CALL", 36: "TLSDESC", 37: "IRELATIVE", 38: "RELATIVE64",
        41: "GOTPCRELX", 42: "REX_GOTPCRELX",
    ]

    /// "R_X86_64_NAME", or the number for a type the psABI does not define.
    public static func relocationName(_ type: UInt32) -> String {
        relocationNames[type].map { "R_X86_64_\($0)" } ?? "type \(type)"
    }

    /// Why a type cannot be honoured, in words a publisher can act on.
    public static func relocationRefusal(_ type: UInt32) -> String {
        switch type {
        case 34...36: return "TLS descriptor (-mtls-dialect=gnu2); build with the default TLS dialect"
        case 19...23: return "thread-local storage code relocation, which belongs in object files, not in a linked patch object"
        case 5: return "copy relocation: data would be copied out of another object"
        case 37: return "GNU indirect function: its resolver would have to run in the target"
        case 2, 4, 10, 11, 12, 13, 14, 15, 24: return "absolute or PC-relative code relocation; build with -fPIC"
        default: return "unknown to the Engine's loader"
        }
    }

    // MARK: Memory

    /// 4 KiB pages.
    public static let pageSize: UInt64 = 4096
    /// The top of the 47-bit user address space, less the guard page the kernel keeps below it.
    public static let userAddressSpaceEnd: UInt64 = 0x7fff_ffff_f000

    // MARK: Jumps

    /// `jmp rel32`: E9 and a 32-bit displacement from the end of the instruction.
    public static let nearJumpLength = 5
    /// `jmp [rip+0]` followed by the 64-bit target: FF 25 00000000 <target>.
    public static let farJumpLength = 14
    /// Just under the ±2 GiB a rel32 displacement reaches, so every byte of a target object is in
    /// reach of every byte of the image.
    public static let nearJumpReach: UInt64 = 0x7ff0_0000
    /// What a rel32 displacement reaches.
    public static let nearJumpReachText = "±2 GiB"

    /// `jmp rel32` from `address` to `target`, or nil if the target is out of ±2 GiB reach.
    public static func nearJump(from address: UInt64, to target: UInt64) -> [UInt8]? {
        let next = address &+ UInt64(nearJumpLength)
        let displacement = Int64(bitPattern: target &- next)
        guard let value = Int32(exactly: displacement) else { return nil }
        return [0xE9] + littleEndianBytes(value)
    }

    /// The 14-byte absolute jump to `target`.
    public static func farJump(to target: UInt64) -> [UInt8] {
        [0xFF, 0x25, 0, 0, 0, 0] + littleEndianBytes(target)
    }

    /// `jmp rel8`: EB and an 8-bit displacement from the end of the instruction.
    public static let entryHopLength = 2

    /// `jmp rel8` from `address` to `target`, or nil if the target is out of its ±128-byte reach.
    public static func entryHop(from address: UInt64, to target: UInt64) -> [UInt8]? {
        let displacement = Int64(bitPattern: target &- (address &+ UInt64(entryHopLength)))
        guard let value = Int8(exactly: displacement) else { return nil }
        return [0xEB, UInt8(bitPattern: value)]
    }

    /// The target and length of a `jmp rel32` or `jmp [rip+0]; .quad` at the start of `bytes`.
    public static func decodeJump(_ bytes: [UInt8], at address: UInt64) -> (target: UInt64, length: Int)? {
        if bytes.count >= nearJumpLength, bytes[0] == 0xE9 {
            let value = bytes[1..<5].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }.littleEndian
            let target = address &+ UInt64(nearJumpLength) &+ UInt64(bitPattern: Int64(value))
            return (target, nearJumpLength)
        }
        if bytes.count >= farJumpLength, bytes[0] == 0xFF, bytes[1] == 0x25,
           bytes[2] == 0, bytes[3] == 0, bytes[4] == 0, bytes[5] == 0 {
            let target = bytes[6..<14].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
            return (target, farJumpLength)
        }
        return nil
    }

    // MARK: System calls

    /// AUDIT_ARCH_X86_64: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    public static let auditArchitecture: UInt32 = 0xC000_003E
    /// From arch/x86/entry/syscalls/syscall_64.tbl.
    public static let systemCalls = SystemCallNumbers(close: 3, mmap: 9, munmap: 11, rtSigprocmask: 14, openat: 257,
                                                      memfdCreate: 319, tgkill: 234, mprotect: 10)
    /// restart_syscall(2), which continues a call interrupted with -ERESTART_RESTARTBLOCK.
    static let restartSyscall = 219
    /// `syscall`: 0F 05.
    public static let systemCallInstruction: [UInt8] = [0x0F, 0x05]

    /// Any byte offset: x86 instructions are not aligned.
    public static func firstSystemCallInstruction(in code: [UInt8]) -> Int? {
        code.withUnsafeBufferPointer { bytes in
            var index = 0
            while index + 1 < bytes.count {
                if bytes[index] == 0x0F && bytes[index + 1] == 0x05 { return index }
                index += 1
            }
            return nil
        }
    }

    // MARK: Registers

    /// Word indices into `struct user_regs_struct` (<sys/user.h>), in its order.
    public enum Word {
        public static let r15 = 0, r14 = 1, r13 = 2, r12 = 3, rbp = 4, rbx = 5, r11 = 6, r10 = 7
        public static let r9 = 8, r8 = 9, rax = 10, rcx = 11, rdx = 12, rsi = 13, rdi = 14, origRAX = 15
        public static let rip = 16, cs = 17, eflags = 18, rsp = 19, ss = 20
        /// How many words the structure holds (fs_base, gs_base, ds, es, fs and gs follow ss).
        public static let count = 27
        /// The system call arguments, in ABI order: rdi, rsi, rdx, r10, r8, r9.
        public static let systemCallArguments = [rdi, rsi, rdx, r10, r8, r9]
    }

    /// 27 words: `struct user_regs_struct`.
    public static let registerWordCount = Word.count
    /// rip.
    public static let instructionPointerWord = Word.rip
    /// rsp.
    public static let stackPointerWord = Word.rsp

    /// orig_rax, which the kernel sets to the call's number on entry and -1 outside a call.
    public static func currentSystemCall(_ registers: some RegisterWords) -> Int? {
        let number = Int64(bitPattern: registers[word: Word.origRAX])
        return number >= 0 ? Int(number) : nil
    }

    /// rax.
    public static func systemCallResult(_ registers: some RegisterWords) -> Int64 {
        Int64(bitPattern: registers[word: Word.rax])
    }

    /// At an entry stop the kernel has set rax to -ENOSYS, and no call returns that at its exit
    /// for a number it knows.
    public static func isSystemCallEntry(_ registers: some RegisterWords) -> Bool {
        systemCallResult(registers) == -38
    }

    /// rdi, rsi, rdx, r10, r8 or r9.
    public static func systemCallArgument(_ registers: some RegisterWords, _ index: Int) -> UInt64 {
        registers[word: Word.systemCallArguments[index]]
    }

    /// The kernel's restart rule for a thread stopped on its way out of an interrupted system call
    /// (arch/x86/kernel/signal.c): rax of -ERESTARTSYS, -ERESTARTNOINTR or -ERESTARTNOHAND
    /// (-512 … -514) runs the call (orig_rax) again; -ERESTART_RESTARTBLOCK (-516) continues it
    /// with `restart_syscall`. Anything else, or no call (orig_rax -1), restarts nothing.
    public static func systemCallRestartedOnResume(_ registers: some RegisterWords) -> Int? {
        guard let call = currentSystemCall(registers) else { return nil }
        switch Int64(bitPattern: registers[word: Word.rax]) {
        case -514 ... -512: return call
        case -516: return restartSyscall
        default: return nil
        }
    }

    /// A restarted call moves the thread back onto its 2-byte `syscall` with the number in rax;
    /// orig_rax -1 then keeps the kernel from applying its rule a second time.
    public static func resumed<Registers: RegisterWords>(_ registers: Registers) -> Registers {
        var resumed = registers
        if let restarted = systemCallRestartedOnResume(registers) {
            resumed[word: Word.rax] = UInt64(restarted)
            resumed[word: Word.rip] = registers[word: Word.rip] &- UInt64(systemCallInstruction.count)
        }
        resumed[word: Word.origRAX] = UInt64.max
        return resumed
    }

    /// Number in rax, arguments in rdi, rsi, rdx, r10, r8, r9, rip at the `syscall`; orig_rax -1
    /// keeps the kernel from applying restart fix-ups to a call the thread was interrupted in.
    public static func prepareSystemCall(_ registers: inout some RegisterWords, number: Int, arguments: [UInt64],
                                         at address: UInt64) {
        registers[word: Word.rax] = UInt64(bitPattern: Int64(number))
        registers[word: Word.origRAX] = UInt64.max
        setArguments(&registers, arguments)
        registers[word: Word.rip] = address
    }

    /// The number goes in orig_rax, which the kernel reads after the entry stop; rip is kept.
    public static func replaceEnteringSystemCall(_ registers: inout some RegisterWords, number: Int, arguments: [UInt64]) {
        registers[word: Word.origRAX] = UInt64(bitPattern: Int64(number))
        setArguments(&registers, arguments)
    }

    private static func setArguments(_ registers: inout some RegisterWords, _ arguments: [UInt64]) {
        precondition(arguments.count <= Word.systemCallArguments.count, "at most six system call arguments")
        for (index, word) in Word.systemCallArguments.enumerated() {
            registers[word: word] = index < arguments.count ? arguments[index] : 0
        }
    }

    // MARK: Injected code

    /// How far below the thread's stack pointer injected code's stack starts: past the 128-byte
    /// red zone the interrupted code may be using.
    public static let stackGap: UInt64 = 256

    /// 256 bytes below, 16-byte aligned.
    public static func injectionStackPointer(below stackPointer: UInt64) -> UInt64 {
        (stackPointer &- stackGap) & ~0xf
    }

    /// See `InjectionStubCode`.
    public static func injectionStub(resuming registers: some RegisterWords, signalMask: UInt64) -> [UInt8] {
        let resumed = resumed(registers)
        return InjectionStubCode.encode(registers: InjectionStubCode.registerOrder.map { resumed[word: $0] },
                                        stackPointer: resumed[word: Word.rsp], flags: resumed[word: Word.eflags],
                                        instructionPointer: resumed[word: Word.rip], signalMask: signalMask)
    }
}

/// `value` as little-endian bytes.
func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

#if arch(x86_64)
/// The architecture this build runs on, and the only one whose processes it patches.
public typealias HostArchitecture = X86_64
#endif
