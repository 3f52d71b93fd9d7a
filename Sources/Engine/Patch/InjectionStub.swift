/// A few bytes of x86-64 code, written into the marker page of a reservation, that make the
/// injection thread's state recoverable without the agent. Injected calls run on its first
/// instruction (`syscall`); with the agent alive the thread is stopped right after it and put back
/// with ptrace as before. If the agent dies instead, the kernel lets the thread run on from there,
/// and the stub restores the thread's own signal mask, general registers and flags, then jumps back
/// to where the thread was (`rt_sigprocmask`, `mov reg, [rip+slot]` ×15, `popfq`, `jmp [rip+slot]`).
/// The code is position-independent: it addresses its saved block relative to itself.
struct InjectionStub {
    /// Where the stub starts in the marker page: after the seal record (at most 289 bytes) and the
    /// path written for `openat`, which must stay shorter than this.
    static let offsetInMarkerPage: UInt64 = 0xE00
    /// How far below the thread's stack pointer the stub's own stack starts: past the 128-byte red
    /// zone the interrupted code may be using, 16-byte aligned.
    static let stackGap: UInt64 = 256

    /// Where and how the thread resumes: the program's own state, restart fix-up applied.
    let resume: Resume
    /// The signal mask to put back.
    let signalMask: UInt64

    /// The state a thread continues with when it runs on freely.
    struct Resume: Equatable {
        /// rax, rbx, rcx, rdx, rsi, rdi, rbp, r8 … r15, in `registerOrder`.
        var registers: [UInt64]
        var stackPointer: UInt64
        var flags: UInt64
        var instructionPointer: UInt64
    }

    /// The stub that resumes a thread stopped with `registers` and `signalMask`.
    init(registers: ThreadRegisters, signalMask: UInt64) {
        let (rax, rip) = InjectionStub.resume(rax: registers.rax, originalRAX: registers.originalRAX,
                                              instructionPointer: registers.instructionPointer)
        var values = InjectionStub.registerOrder.map { registers.generalRegister($0) }
        values[0] = rax
        self.init(resume: Resume(registers: values, stackPointer: registers.stackPointer, flags: registers.flags,
                                 instructionPointer: rip), signalMask: signalMask)
    }

    init(resume: Resume, signalMask: UInt64) {
        self.resume = resume
        self.signalMask = signalMask
    }

    /// x86-64 register numbers in the order their slots are laid out (rsp, 4, is handled apart).
    static let registerOrder: [UInt8] = [0, 3, 1, 2, 6, 7, 5, 8, 9, 10, 11, 12, 13, 14, 15]

    /// The kernel's restart fix-up for a thread stopped on its way out of an interrupted system call:
    /// rax of -ERESTARTSYS, -ERESTARTNOINTR or -ERESTARTNOHAND (-512 … -514) re-executes the call
    /// (back onto the 2-byte `syscall`, rax = the call's number); -ERESTART_RESTARTBLOCK (-516)
    /// continues it with `restart_syscall` (219). Anything else resumes where it is.
    static func resume(rax: UInt64, originalRAX: UInt64, instructionPointer: UInt64) -> (rax: UInt64, instructionPointer: UInt64) {
        guard Int64(bitPattern: originalRAX) >= 0 else { return (rax, instructionPointer) }
        switch Int64(bitPattern: rax) {
        case -514 ... -512: return (originalRAX, instructionPointer &- 2)
        case -516: return (219, instructionPointer &- 2)
        default: return (rax, instructionPointer)
        }
    }

    /// The stub's bytes; its first two are the `syscall` the injected calls run on.
    func encode() -> [UInt8] {
        var code: [UInt8] = [0x0F, 0x05]                     // syscall
        var fixups: [(at: Int, slot: Int)] = []              // rel32 fields to point at a slot
        func ripRelative(_ prefix: [UInt8], slot: Int) {
            code += prefix
            fixups.append((code.count, slot))
            code += [0, 0, 0, 0]
        }
        // Slots: 0 mask, 1 flags, 2 … 16 registers, 17 rsp, 18 rip.
        code += [0xB8, 14, 0, 0, 0]                          // mov eax, 14 (rt_sigprocmask)
        code += [0xBF, 2, 0, 0, 0]                           // mov edi, 2 (SIG_SETMASK)
        ripRelative([0x48, 0x8D, 0x35], slot: 0)             // lea rsi, [rip+mask]
        code += [0x31, 0xD2]                                 // xor edx, edx (no old mask)
        code += [0x41, 0xBA, 8, 0, 0, 0]                     // mov r10d, 8 (sigset size)
        code += [0x0F, 0x05]                                 // syscall
        ripRelative([0xFF, 0x35], slot: 1)                   // push qword [rip+flags]
        code += [0x9D]                                       // popfq
        for (index, register) in InjectionStub.registerOrder.enumerated() {
            // mov reg, [rip+slot]: REX.W (+R for r8-r15), 8B, ModRM reg/rip-relative.
            ripRelative([0x48 | (register >= 8 ? 4 : 0), 0x8B, ((register & 7) << 3) | 5], slot: 2 + index)
        }
        ripRelative([0x48, 0x8B, 0x25], slot: 17)            // mov rsp, [rip+rsp]
        ripRelative([0xFF, 0x25], slot: 18)                  // jmp qword [rip+rip]
        while code.count % 8 != 0 { code.append(0xCC) }
        let slotsStart = code.count
        for fixup in fixups {
            let displacement = Int32(slotsStart + fixup.slot * 8 - (fixup.at + 4))
            withUnsafeBytes(of: displacement.littleEndian) { code.replaceSubrange(fixup.at..<fixup.at + 4, with: $0) }
        }
        let slots: [UInt64] = [signalMask, resume.flags] + resume.registers + [resume.stackPointer, resume.instructionPointer]
        precondition(slots.count == 19)
        for slot in slots { code.appendLittleEndian(slot) }
        return code
    }
}
