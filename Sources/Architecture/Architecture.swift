/// What the hotpatch machinery must know about one processor architecture: how its ELF objects are
/// marked and relocated, how its system calls are made and restarted, where a stopped thread's
/// registers are, and how a jump is encoded. Every such fact lives in one conforming type (and its
/// folder, `X86_64/`), so a port to another architecture is a new folder, not a hunt; the rest of
/// the package asks `HostArchitecture`, which names the conformance this build runs on.
///
/// Registers are described by their index into the kernel's register block of a stopped thread
/// (the words PTRACE_GETREGS fills), so the runtime reads and writes them through a word buffer
/// without knowing their names.
public protocol Architecture {
    // MARK: ELF objects

    /// `e_machine` of this architecture's ELF objects.
    static var elfMachine: UInt16 { get }
    /// The name the ELF specification gives `elfMachine`, for messages (e.g. "EM_X86_64").
    static var elfMachineName: String { get }
    /// What the loader does with relocation type `type`; nil when the loader does not apply it.
    static func relocationKind(_ type: UInt32) -> RelocationKind?
    /// The psABI's name of relocation type `type` (e.g. "R_X86_64_RELATIVE"), or "type N".
    static func relocationName(_ type: UInt32) -> String
    /// Why the loader cannot honour relocation type `type`, in words a publisher can act on.
    static func relocationRefusal(_ type: UInt32) -> String
    /// The relocation type a dynamic linker fills with the result of running an indirect
    /// function's resolver (its addend): R_X86_64_IRELATIVE and its kin.
    static var indirectRelativeRelocationType: UInt32 { get }
    /// A thread-local's offset from the thread pointer, for the variable `offset` bytes into a
    /// static TLS block that the dynamic linker placed `blockOffset` from the thread pointer (glibc's
    /// `l_tls_offset`; its sign and meaning follow the architecture's TLS variant).
    static func threadPointerOffset(blockOffset: UInt64, variableOffset: UInt64) -> UInt64

    // MARK: Memory

    /// The page size mappings are made with.
    static var pageSize: UInt64 { get }
    /// The first address past user space: no mapping can end beyond it.
    static var userAddressSpaceEnd: UInt64 { get }

    // MARK: Jumps written at a function's entry

    /// The length of the short jump, which reaches `nearJumpReach` bytes either way.
    static var nearJumpLength: Int { get }
    /// The length of the jump that reaches any address.
    static var farJumpLength: Int { get }
    /// How far a patch image may lie from its target so the short jump always reaches.
    static var nearJumpReach: UInt64 { get }
    /// The short jump's reach in words, for messages (e.g. "±2 GiB").
    static var nearJumpReachText: String { get }
    /// The short jump from `address` to `target`, or nil when the target is out of its reach.
    static func nearJump(from address: UInt64, to target: UInt64) -> [UInt8]?
    /// The jump that reaches `target` from anywhere.
    static func farJump(to target: UInt64) -> [UInt8]
    /// The length of the entry hop: the smallest jump, written at the entry of a function too short
    /// for the near jump, to a near jump placed in the padding just before that entry.
    static var entryHopLength: Int { get }
    /// The entry hop from `address` to `target` (a few bytes before it), or nil when out of its reach.
    static func entryHop(from address: UInt64, to target: UInt64) -> [UInt8]?
    /// Whether `bytes` are whole filler instructions (no-ops, traps) such as assemblers put between
    /// functions: the only bytes before an entry that an entry hop's near jump may overwrite.
    static func isFiller(_ bytes: [UInt8]) -> Bool
    /// Where libgcc_s keeps its registered unwind tables, read from the code of its
    /// `__register_frame_info_bases` (`bytes`, linked at `address`); nil when it is not recognised.
    static func unwinderRegistry(inRegisterFunction bytes: [UInt8], at address: UInt64) -> UnwinderRegistryLayout?
    /// The target and length of a jump of either form at the start of `bytes`, placed at `address`.
    static func decodeJump(_ bytes: [UInt8], at address: UInt64) -> (target: UInt64, length: Int)?

    // MARK: System calls

    /// The audit architecture a seccomp filter sees for this ABI's system calls (`AUDIT_ARCH_*`).
    static var auditArchitecture: UInt32 { get }
    /// The numbers of the system calls the runtime injects.
    static var systemCalls: SystemCallNumbers { get }
    /// The system call instruction's bytes.
    static var systemCallInstruction: [UInt8] { get }
    /// The offset of the first system call instruction in `code` (bytes of executable memory), if any.
    static func firstSystemCallInstruction(in code: [UInt8]) -> Int?

    // MARK: A stopped thread's registers

    /// How many 64-bit words the kernel's register block of one thread holds.
    static var registerWordCount: Int { get }
    /// The word holding the instruction pointer.
    static var instructionPointerWord: Int { get }
    /// The word holding the stack pointer.
    static var stackPointerWord: Int { get }
    /// The system call a thread stopped at a system call entry or exit is in; nil when none.
    static func currentSystemCall(_ registers: some RegisterWords) -> Int?
    /// The result of the system call a thread stopped at its exit made (a negative value is -errno).
    static func systemCallResult(_ registers: some RegisterWords) -> Int64
    /// System call argument `index` (0 … 5) as it stands in the registers.
    static func systemCallArgument(_ registers: some RegisterWords, _ index: Int) -> UInt64
    /// Whether a thread in a system call stop stands at the call's entry (not its exit).
    static func isSystemCallEntry(_ registers: some RegisterWords) -> Bool
    /// The system call the kernel runs again when a thread stopped on its way out of an interrupted
    /// call resumes (the thread is moved back onto its system call instruction); nil when none.
    static func systemCallRestartedOnResume(_ registers: some RegisterWords) -> Int?
    /// The registers that run again a call the thread's stop alone failed with EINTR (epoll_wait,
    /// sigtimedwait and the like, which the kernel does not restart after a stop); nil when the thread
    /// is not on its way out of such a call.
    static func rerunningCallFailedByStop<Registers: RegisterWords>(_ registers: Registers) -> Registers?
    /// The registers a thread stopped with `registers` continues with when it runs on by itself:
    /// the kernel's restart rules already applied, and no system call pending, so none is applied
    /// on top.
    static func resumed<Registers: RegisterWords>(_ registers: Registers) -> Registers
    /// Sets up `registers` to run system call `number` with `arguments` (at most six, zero where
    /// none is given) on the system call instruction at `address`, with no pending call to restart.
    static func prepareSystemCall(_ registers: inout some RegisterWords, number: Int, arguments: [UInt64], at address: UInt64)
    /// At a system call entry stop, replaces the call the kernel is about to run; where the thread
    /// returns afterwards is left alone.
    static func replaceEnteringSystemCall(_ registers: inout some RegisterWords, number: Int, arguments: [UInt64])

    // MARK: Code the runtime writes into a target

    /// The stack pointer injected code may use in a thread whose stack pointer is `stackPointer`:
    /// past the area below it the ABI lets interrupted code use (the red zone), aligned.
    static func injectionStackPointer(below stackPointer: UInt64) -> UInt64
    /// A self-restoring stub: its first instruction is the system call instruction the injected
    /// calls run on; run on from there, it restores `signalMask` and the thread's state `resumed`
    /// from `registers`, and jumps back to where the thread was. Position-independent.
    static func injectionStub(resuming registers: some RegisterWords, signalMask: UInt64) -> [UInt8]
    /// The code of `program`, to be written `stubDistance` bytes before a stub (`injectionStub`)
    /// whose system call instruction its ending runs on. Position-independent.
    static func injectionProgram(_ program: InjectionProgram, stubDistance: Int) -> EncodedInjectionProgram
    /// `encoded` (a program's code, of the same length whatever its stub distance) made to end on
    /// a stub `stubDistance` bytes after its start: its size decides where it goes, so it is
    /// encoded once to learn it and only its ending's jump is changed for the place.
    static func injectionProgram(_ encoded: EncodedInjectionProgram, stubDistance: Int) -> EncodedInjectionProgram

    // MARK: The kernel's reports of user faults

    /// Text every line in which this architecture's kernel reports a user fault contains: a cheap
    /// filter, since almost no kernel log record is one.
    static var kernelFaultMarkers: [String] { get }
    /// The fault `message` (the text of one kernel log record, after its `PRI,SEQ,…;` header)
    /// reports in one of the forms this architecture's fault and trap handlers print; nil when it
    /// is not such a line, was cut, or could be read two ways (the names in it are chosen by
    /// whoever runs the faulting program).
    static func parseKernelFault(_ message: Substring) -> KernelFaultLine?
}

/// What one kernel log line about a user fault says, whatever the architecture's wording.
public struct KernelFaultLine: Sendable, Equatable {
    /// The mapping that held the faulting instruction, as the kernel names it: the file's base name
    /// (`memfd:NAME` for a memfd), and where the mapping lies.
    public struct Mapping: Sendable, Equatable {
        /// The mapped file's name (no directory).
        public var name: String
        /// The mapping's first address.
        public var start: UInt64
        /// The mapping's length in bytes.
        public var size: UInt64

        /// Names each part.
        public init(name: String, start: UInt64, size: UInt64) {
            self.name = name
            self.start = start
            self.size = size
        }
    }

    /// The faulting thread's name (`comm`), as escaped by the kernel.
    public var command: String
    /// The faulting thread's id as printed (the kernel's `pid_t`; callers wrap it in their id type).
    public var thread: Int32
    /// What happened, in the kernel's words: `segfault`, `trap invalid opcode`, ….
    public var kind: String
    /// The faulting instruction's address.
    public var instructionPointer: UInt64
    /// The file mapping that held the instruction; nil when it was anonymous memory or the kernel
    /// left the part out.
    public var mapping: Mapping?

    /// Names each part.
    public init(command: String, thread: Int32, kind: String, instructionPointer: UInt64, mapping: Mapping?) {
        self.command = command
        self.thread = thread
        self.kind = kind
        self.instructionPointer = instructionPointer
        self.mapping = mapping
    }
}

/// Read and write access to a stopped thread's registers by word index (see `Architecture`).
public protocol RegisterWords {
    /// Word `index` of the kernel's register block.
    subscript(word index: Int) -> UInt64 { get set }
}

/// What a relocation asks the loader to store in its 8-byte word.
public enum RelocationKind: Sendable, Equatable {
    /// Nothing (a placeholder entry).
    case none
    /// The load base plus the addend.
    case relative
    /// The symbol's address plus the addend.
    case symbolPlusAddend
    /// The symbol's address (a GOT or PLT slot).
    case symbol
    /// The module id of the thread-local symbol's object (the index into a thread's DTV), for
    /// `__tls_get_addr` (global-dynamic model).
    case threadLocalModule
    /// The thread-local symbol's offset in its object's TLS block, plus the addend
    /// (global-dynamic model, the second word `__tls_get_addr` is given).
    case threadLocalOffset
    /// The thread-local symbol's address minus the thread pointer, plus the addend; defined only
    /// for an object whose block is in static TLS (initial-exec model).
    case threadPointerOffset
}

/// The numbers of the system calls the runtime injects into a target, for one architecture.
public struct SystemCallNumbers: Sendable {
    /// close(2).
    public var close: Int
    /// mmap(2).
    public var mmap: Int
    /// munmap(2).
    public var munmap: Int
    /// rt_sigprocmask(2).
    public var rtSigprocmask: Int
    /// openat(2).
    public var openat: Int
    /// memfd_create(2).
    public var memfdCreate: Int
    /// tgkill(2), with which an injected program stops its thread once it is done.
    public var tgkill: Int
    /// mprotect(2), with which the dynamic linker makes an object's relocated data read-only
    /// (RELRO): where the exec gate holds a new process.
    public var mprotect: Int

    /// Names each number.
    public init(close: Int, mmap: Int, munmap: Int, rtSigprocmask: Int, openat: Int, memfdCreate: Int, tgkill: Int, mprotect: Int) {
        self.close = close
        self.mmap = mmap
        self.munmap = munmap
        self.rtSigprocmask = rtSigprocmask
        self.openat = openat
        self.memfdCreate = memfdCreate
        self.tgkill = tgkill
        self.mprotect = mprotect
    }
}

extension Architecture {
    /// The shortest jump from `address` to `target` that fits in `room` bytes, or nil if none does.
    public static func bestJump(from address: UInt64, to target: UInt64, room: UInt64) -> [UInt8]? {
        if room >= UInt64(nearJumpLength), let near = nearJump(from: address, to: target) { return near }
        if room >= UInt64(farJumpLength) { return farJump(to: target) }
        return nil
    }
}

/// Where libgcc_s's unwinder keeps the unwind tables registered with `__register_frame_info`, as
/// link-time addresses in libgcc_s, and the record such a registration adds (GCC's `struct object`:
/// pc_begin, tbase, dbase, the table, flags, next; six words).
public struct UnwinderRegistryLayout: Sendable, Equatable {
    /// The `pthread_mutex_t` that guards the list; its first word is 0 when nobody holds it.
    public var lock: UInt64
    /// The head of the list of tables not yet searched (`unseen_objects`).
    public var listHead: UInt64
    /// The 32-bit flag that tells the unwinder any table was registered at all.
    public var anyRegisteredFlag: UInt64
    /// The flags word of a new record (its encoding "omit" and nothing sorted yet).
    public var initialFlags: UInt64

    /// Describes a layout.
    public init(lock: UInt64, listHead: UInt64, anyRegisteredFlag: UInt64, initialFlags: UInt64) {
        self.lock = lock
        self.listHead = listHead
        self.anyRegisteredFlag = anyRegisteredFlag
        self.initialFlags = initialFlags
    }

    /// The size of one record.
    public static let recordSize = 48
    /// Where in a record its table's address goes.
    public static let tableOffset = 24

    /// A record for the table at `table`, placed before `next` in the list.
    public func record(table: UInt64, next: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        for word in [UInt64.max, 0, 0, table, initialFlags, next] {
            withUnsafeBytes(of: word.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }
}
