/// The x86-64 code of an `InjectionProgram` (`Architecture.injectionProgram`). Each call loads
/// its number into rax and all six argument registers (rdi, rsi, rdx, r10, r8, r9; zero where the
/// call has fewer arguments, as the seccomp gate evaluated it), runs `syscall`, stores rax in its
/// slot and checks it (`test rax, rax; js` for a descriptor, `cmp rax, rcx; jne` for a value),
/// jumping to the cleanups on a mismatch. A cleanup runs only when its descriptor register is not
/// negative. The ending loads its call and jumps to the stub's `syscall`. The result slots are on
/// the stack, at `[rsp + 8 × i]` (the program's own page is not writable: W^X), filled with
/// `notRun` first; the code is position-independent.
public enum InjectionProgramCode {
    /// The x86-64 register numbers of the system call arguments, in ABI order: rdi, rsi, rdx, r10, r8, r9.
    private static let argumentRegisters: [UInt8] = [7, 6, 2, 10, 8, 9]
    private static let rax: UInt8 = 0, rcx: UInt8 = 1

    /// The program's code, to be written `stubDistance` bytes before the stub's `syscall`.
    public static func encode(_ program: InjectionProgram, stubDistance: Int) -> EncodedInjectionProgram {
        // Appended in place, with room for a typical program: one is encoded for every process
        // a first apply loads into.
        var code: [UInt8] = []
        code.reserveCapacity(1024)
        var cleanupJumps: [Int] = []                     // rel32 fields of the jumps to the cleanups
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { code.append(contentsOf: $0) }
        }

        // mov [rsp+8*slot], rax / mov reg, [rsp+8*slot]: REX.W (+R), 89/8B, ModRM disp32 + SIB rsp.
        func store(slot: Int) {
            code.append(contentsOf: [0x48, 0x89, 0x84, 0x24])
            append(Int32(slot * 8))
        }
        func load(_ register: UInt8, slot: Int) {
            code.append(contentsOf: [0x48 | (register >= 8 ? 4 : 0), 0x8B, 0x84 | ((register & 7) << 3), 0x24])
            append(Int32(slot * 8))
        }
        func patch(_ field: Int, toReach target: Int) {
            withUnsafeBytes(of: Int32(target - (field + 4)).littleEndian) { code.replaceSubrange(field..<field + 4, with: $0) }
        }
        func moveImmediate(_ register: UInt8, _ value: UInt64) {
            let extended: UInt8 = register >= 8 ? 1 : 0   // REX.B
            if value <= UInt64(UInt32.max) {
                // mov r32, imm32 (zero-extends to 64 bits)
                if extended != 0 { code.append(0x41) }
                code.append(0xB8 + (register & 7))
                append(UInt32(value))
            } else if let small = Int32(exactly: Int64(bitPattern: value)) {
                // mov r/m64, imm32 (sign-extends): AT_FDCWD, -1
                code.append(contentsOf: [0x48 | extended, 0xC7, 0xC0 | (register & 7)])
                append(small)
            } else {
                // mov r64, imm64
                code.append(contentsOf: [0x48 | extended, 0xB8 + (register & 7)])
                append(value)
            }
        }
        func load(_ register: UInt8, _ argument: InjectionProgram.Argument) {
            switch argument {
            case let .value(value):
                moveImmediate(register, value)
            case let .resultOf(index):
                load(register, slot: index)
            }
        }
        func setUp(_ number: Int, _ arguments: [InjectionProgram.Argument]) {
            moveImmediate(rax, UInt64(number))
            for (index, register) in argumentRegisters.enumerated() {
                load(register, index < arguments.count ? arguments[index] : .value(0))
            }
        }

        let count = program.calls.count + program.cleanups.count
        if count > 0 { moveImmediate(rax, UInt64(bitPattern: EncodedInjectionProgram.notRun)) }
        for slot in 0..<count { store(slot: slot) }
        for (index, call) in program.calls.enumerated() {
            setUp(call.number, call.arguments)
            code += X86_64.systemCallInstruction                       // syscall
            store(slot: index)                                          // mov [rsp+slot], rax
            switch call.expectation {
            case .descriptor:
                code += [0x48, 0x85, 0xC0]                              // test rax, rax
                code += [0x0F, 0x88]                                    // js cleanups
            case let .value(expected):
                moveImmediate(rcx, expected)
                code += [0x48, 0x39, 0xC8]                              // cmp rax, rcx
                code += [0x0F, 0x85]                                    // jne cleanups
            }
            cleanupJumps.append(code.count)
            code += [0, 0, 0, 0]
        }
        let cleanupsStart = code.count
        for field in cleanupJumps { patch(field, toReach: cleanupsStart) }
        for (index, cleanup) in program.cleanups.enumerated() {
            setUp(cleanup.number, cleanup.arguments)
            let guardRegister = argumentRegisters[cleanup.guardArgument]
            let both: UInt8 = guardRegister >= 8 ? 5 : 0                // REX.R and REX.B
            code += [0x48 | both, 0x85, 0xC0 | ((guardRegister & 7) << 3) | (guardRegister & 7)]  // test reg, reg
            code += [0x0F, 0x88]                                        // js past the call
            let skip = code.count
            code += [0, 0, 0, 0]
            code += X86_64.systemCallInstruction                       // syscall
            store(slot: program.calls.count + index)                   // mov [rsp+slot], rax
            patch(skip, toReach: code.count)
        }
        setUp(program.ending.number, program.ending.arguments.map { .value($0) })
        code.append(0xE9)                                               // jmp stub
        append(Int32(stubDistance - (code.count + 4)))
        return EncodedInjectionProgram(bytes: code, resultCount: count)
    }
}

extension X86_64 {
    /// See `InjectionProgramCode`.
    public static func injectionProgram(_ program: InjectionProgram, stubDistance: Int) -> EncodedInjectionProgram {
        InjectionProgramCode.encode(program, stubDistance: stubDistance)
    }
}
