extension X86_64 {
    /// Where libgcc_s keeps its registered unwind tables, read from the code of its
    /// `__register_frame_info_bases` (`bytes`, linked at `address`): the instructions that take the
    /// lock (`lea object_mutex(%rip),%rdi`), link the new record (`mov unseen_objects(%rip),%rax;
    /// mov %rbx,unseen_objects(%rip); mov %rax,0x28(%rbx)`), store the table (`mov %rdi,0x18(%rsi)`)
    /// and its flags (`movq $FLAGS,0x20(%rsi)`), and raise the flag (`movl $1,any(%rip)`). nil unless
    /// every one is found, so a libgcc built differently is never written to on a guess.
    public static func unwinderRegistry(inRegisterFunction bytes: [UInt8], at address: UInt64) -> UnwinderRegistryLayout? {
        func displacement(_ index: Int) -> Int64 {
            Int64(Int32(bitPattern: UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8
                        | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24))
        }
        func matches(_ pattern: [UInt8], at index: Int) -> Bool {
            index >= 0 && index + pattern.count <= bytes.count && Array(bytes[index..<(index + pattern.count)]) == pattern
        }
        // The address a rip-relative operand at `index` (a 4-byte displacement) reaches from the end
        // of its instruction, `end` bytes later.
        func target(displacementAt index: Int, instructionEnd end: Int) -> UInt64 {
            address &+ UInt64(end) &+ UInt64(bitPattern: displacement(index))
        }
        var mutex: UInt64?, head: UInt64?, flag: UInt64?, initialFlags: UInt64?
        var storesTable = false, linksNext = false, raisesFlag: UInt64?
        for index in bytes.indices {
            if mutex == nil, matches([0x48, 0x8D, 0x3D], at: index), index + 7 <= bytes.count {
                mutex = target(displacementAt: index + 3, instructionEnd: index + 7)
            }
            if head == nil, matches([0x48, 0x8B, 0x05], at: index), matches([0x48, 0x89, 0x1D], at: index + 7),
               index + 14 <= bytes.count {
                let read = target(displacementAt: index + 3, instructionEnd: index + 7)
                if read == target(displacementAt: index + 10, instructionEnd: index + 14) { head = read }
            }
            if flag == nil, matches([0x8B, 0x05], at: index), matches([0x85, 0xC0], at: index + 6) {
                flag = target(displacementAt: index + 2, instructionEnd: index + 6)
            }
            if raisesFlag == nil, matches([0xC7, 0x05], at: index), matches([0x01, 0x00, 0x00, 0x00], at: index + 6) {
                raisesFlag = target(displacementAt: index + 2, instructionEnd: index + 10)
            }
            if initialFlags == nil, matches([0x48, 0xC7, 0x46, 0x20], at: index), index + 8 <= bytes.count {
                initialFlags = UInt64(bitPattern: displacement(index + 4))
            }
            if matches([0x48, 0x89, 0x7E, 0x18], at: index) { storesTable = true }
            if matches([0x48, 0x89, 0x43, 0x28], at: index) { linksNext = true }
        }
        guard let mutex, let head, let flag, raisesFlag == flag, let initialFlags, storesTable, linksNext else { return nil }
        return UnwinderRegistryLayout(lock: mutex, listHead: head, anyRegisteredFlag: flag, initialFlags: initialFlags)
    }
}
