import CPtrace
import Glibc
import LinuxSystem

/// The x86_64 general registers of a stopped thread, kept as a Swift value so no C type leaves the
/// system layer.
public struct ThreadRegisters: Sendable, Equatable {
    fileprivate var raw: cptrace_regs

    /// The instruction pointer (rip).
    public var instructionPointer: UInt64 {
        get { raw.rip }
        set { raw.rip = newValue }
    }
    /// The stack pointer (rsp).
    public var stackPointer: UInt64 {
        get { raw.rsp }
        set { raw.rsp = newValue }
    }
    /// rax: the system call number on entry, its result on exit.
    public var rax: UInt64 {
        get { raw.rax }
        set { raw.rax = newValue }
    }
    /// orig_rax: the system call the thread was in when it stopped, or -1 (UInt64.max) if none.
    public var originalRAX: UInt64 {
        get { raw.orig_rax }
        set { raw.orig_rax = newValue }
    }

    /// Where the thread will execute next when resumed. A thread stopped inside a restartable
    /// system call is moved back onto its 2-byte `syscall` instruction by the kernel, so that is
    /// where it resumes (the kernel's rule: `InjectionStub.resume`).
    public var resumeAddress: UInt64 {
        InjectionStub.resume(rax: raw.rax, originalRAX: raw.orig_rax, instructionPointer: raw.rip).instructionPointer
    }

    /// rflags.
    var flags: UInt64 { raw.eflags }

    /// A general register by its x86-64 number (0 rax, 1 rcx, 2 rdx, 3 rbx, 4 rsp, 5 rbp, 6 rsi,
    /// 7 rdi, 8 … 15 r8 … r15).
    func generalRegister(_ number: UInt8) -> UInt64 {
        switch number {
        case 0: return raw.rax
        case 1: return raw.rcx
        case 2: return raw.rdx
        case 3: return raw.rbx
        case 4: return raw.rsp
        case 5: return raw.rbp
        case 6: return raw.rsi
        case 7: return raw.rdi
        case 8: return raw.r8
        case 9: return raw.r9
        case 10: return raw.r10
        case 11: return raw.r11
        case 12: return raw.r12
        case 13: return raw.r13
        case 14: return raw.r14
        default: return raw.r15
        }
    }

    public static func == (lhs: ThreadRegisters, rhs: ThreadRegisters) -> Bool {
        withUnsafeBytes(of: lhs.raw) { l in withUnsafeBytes(of: rhs.raw) { r in l.elementsEqual(r) } }
    }

    /// At a system call entry stop, replaces the call the kernel is about to run: number in
    /// orig_rax (what the kernel reads after the stop), arguments in rdi, rsi, rdx, r10, r8, r9.
    /// Where the thread returns afterwards (rip) is left alone.
    mutating func replaceEnteringSystemCall(number: Int, arguments: [UInt64]) {
        raw.orig_rax = UInt64(bitPattern: Int64(number))
        setSystemCallArguments(arguments)
    }

    /// rdi, rsi, rdx, r10, r8, r9 from `arguments`, zero where none is given.
    private mutating func setSystemCallArguments(_ arguments: [UInt64]) {
        let padded = arguments + Array(repeating: 0, count: max(0, 6 - arguments.count))
        raw.rdi = padded[0]
        raw.rsi = padded[1]
        raw.rdx = padded[2]
        raw.r10 = padded[3]
        raw.r8 = padded[4]
        raw.r9 = padded[5]
    }

    /// Sets the registers the x86_64 system call ABI reads: number in rax, arguments in
    /// rdi, rsi, rdx, r10, r8, r9.
    mutating func prepareSystemCall(number: Int, arguments: [UInt64], at instruction: UInt64) {
        raw.rax = UInt64(bitPattern: Int64(number))
        // -1 keeps the kernel from applying restart fix-ups to a call the thread was interrupted in.
        raw.orig_rax = UInt64.max
        setSystemCallArguments(arguments)
        raw.rip = instruction
    }
}

/// What `waitpid` reported about one traced thread.
enum TraceEvent: Equatable {
    /// The thread stopped; `signal` is the stop signal, `event` the PTRACE_EVENT_* number (0: none).
    case stopped(signal: Int32, event: Int32)
    /// The thread exited with a status.
    case exited(status: Int32)
    /// The thread was killed by a signal.
    case killed(signal: Int32)

    /// A PTRACE_EVENT_STOP: the stop PTRACE_INTERRUPT (or a new traced clone) produces.
    var isInterruptStop: Bool {
        if case let .stopped(_, event) = self { return event == Int32(CPTRACE_EVENT_STOP) }
        return false
    }

    /// A signal-delivery-stop: a signal is waiting to be delivered to the thread.
    var deliverableSignal: Int32? {
        if case let .stopped(signal, event) = self, event == 0, signal != SIGTRAP { return signal }
        return nil
    }
}

/// The ptrace(2) verbs the Engine uses, each through the errno choke point. All requests for a
/// tracee must come from the OS thread that seized it.
enum Ptrace {
    /// Attaches without stopping, asking to trace new threads too. PTRACE_SEIZE.
    static func seize(_ tid: Int32) throws {
        try SystemCall.run("ptrace(PTRACE_SEIZE)", "thread \(tid)") {
            cptrace_seize(tid, UInt(CPTRACE_O_TRACECLONE))
        }
    }

    /// Asks a seized thread to stop. PTRACE_INTERRUPT.
    static func interrupt(_ tid: Int32) throws {
        try SystemCall.run("ptrace(PTRACE_INTERRUPT)", "thread \(tid)") { cptrace_interrupt(tid) }
    }

    /// Detaches, delivering `signal` (0 for none). PTRACE_DETACH.
    static func detach(_ tid: Int32, signal: Int32 = 0) throws {
        try SystemCall.run("ptrace(PTRACE_DETACH)", "thread \(tid)") { cptrace_detach(tid, signal) }
    }

    /// Resumes, delivering `signal` (0 for none). PTRACE_CONT.
    static func resume(_ tid: Int32, signal: Int32 = 0) throws {
        try SystemCall.run("ptrace(PTRACE_CONT)", "thread \(tid)") { cptrace_cont(tid, signal) }
    }

    /// Executes one instruction, then stops. PTRACE_SINGLESTEP.
    static func singleStep(_ tid: Int32) throws {
        try SystemCall.run("ptrace(PTRACE_SINGLESTEP)", "thread \(tid)") { cptrace_singlestep(tid, 0) }
    }

    /// Reads the general registers. PTRACE_GETREGS.
    static func registers(_ tid: Int32) throws -> ThreadRegisters {
        var regs = cptrace_regs()
        try SystemCall.run("ptrace(PTRACE_GETREGS)", "thread \(tid)") { cptrace_getregs(tid, &regs) }
        return ThreadRegisters(raw: regs)
    }

    /// Writes the general registers. PTRACE_SETREGS.
    static func setRegisters(_ tid: Int32, _ registers: ThreadRegisters) throws {
        var regs = registers.raw
        try SystemCall.run("ptrace(PTRACE_SETREGS)", "thread \(tid)") { cptrace_setregs(tid, &regs) }
    }

    /// The thread's blocked-signal mask. PTRACE_GETSIGMASK.
    static func signalMask(_ tid: Int32) throws -> UInt64 {
        var mask: UInt64 = 0
        try SystemCall.run("ptrace(PTRACE_GETSIGMASK)", "thread \(tid)") { cptrace_getsigmask(tid, &mask) }
        return mask
    }

    /// Replaces the thread's blocked-signal mask. PTRACE_SETSIGMASK.
    static func setSignalMask(_ tid: Int32, _ mask: UInt64) throws {
        try SystemCall.run("ptrace(PTRACE_SETSIGMASK)", "thread \(tid)") { cptrace_setsigmask(tid, mask) }
    }

    /// The message of the last ptrace event (a new thread's id after PTRACE_EVENT_CLONE).
    static func eventMessage(_ tid: Int32) throws -> UInt {
        var message: UInt = 0
        try SystemCall.run("ptrace(PTRACE_GETEVENTMSG)", "thread \(tid)") { cptrace_geteventmsg(tid, &message) }
        return message
    }

    /// The seccomp filters of a stopped thread, most recently installed first.
    /// PTRACE_SECCOMP_GET_FILTER (needs CAP_SYS_ADMIN).
    static func seccompFilters(_ tid: Int32) throws -> [[cptrace_bpf_insn]] {
        var filters: [[cptrace_bpf_insn]] = []
        var index: UInt = 0
        while true {
            let count = cptrace_seccomp_get_filter(tid, index, nil)
            if count == -1 {
                // ENOENT marks the end of the list.
                if Glibc.errno == ENOENT { return filters }
                throw EngineError.systemCall(name: "ptrace(PTRACE_SECCOMP_GET_FILTER)", errno: Glibc.errno,
                                             subject: "thread \(tid), filter \(index)")
            }
            var program = [cptrace_bpf_insn](repeating: cptrace_bpf_insn(), count: count)
            try SystemCall.run("ptrace(PTRACE_SECCOMP_GET_FILTER)", "thread \(tid), filter \(index)") {
                cptrace_seccomp_get_filter(tid, index, &program)
            }
            filters.append(program)
            index += 1
        }
    }

    /// Waits for any event of a tracee of this OS thread, without blocking; nil when none is ready.
    /// waitpid(-1, WNOHANG|__WALL|__WNOTHREAD): one loop for every thread, so a dead leader never
    /// makes us wait on siblings first.
    static func pollEvent() throws(SystemError) -> (tid: Int32, event: TraceEvent)? {
        var status: Int32 = 0
        let tid = try SystemCall.run("waitpid", "tracees") {
            waitpid(-1, &status, WNOHANG | __WALL | __WNOTHREAD)
        }
        if tid == 0 { return nil }
        return (tid, decode(status))
    }

    /// Waits up to `deadline` for the next tracee event. It blocks in waitpid (so the CPU is free
    /// for the very tracee it waits for) and a per-thread timer interrupts it at the deadline.
    static func nextEvent(until deadline: Monotonic.Instant) throws(SystemError) -> (tid: Int32, event: TraceEvent)? {
        while true {
            do {
                if let event = try pollEvent() { return event }
            } catch where error.errno == ECHILD {
                return nil
            }
            let now = Monotonic.now
            if now >= deadline { return nil }
            if cptrace_deadline_arm(Int64(deadline.nanoseconds - now.nanoseconds)) != 0 {
                // No timer: fall back to a short sleep between polls.
                Monotonic.sleep(microseconds: 20)
                continue
            }
            var status: Int32 = 0
            let tid = waitpid(-1, &status, __WALL | __WNOTHREAD)
            let number = errno
            cptrace_deadline_disarm()
            if tid > 0 { return (tid, decode(status)) }
            if number == ECHILD { return nil }
            if number != EINTR {
                throw SystemError(call: "waitpid", errno: number, subject: "tracees")
            }
        }
    }

    private static func decode(_ status: Int32) -> TraceEvent {
        if cptrace_wifexited(status) != 0 { return .exited(status: cptrace_wexitstatus(status)) }
        if cptrace_wifsignaled(status) != 0 { return .killed(signal: cptrace_wtermsig(status)) }
        return .stopped(signal: cptrace_wstopsig(status), event: cptrace_wevent(status))
    }

    /// Sends `signal` to one thread. tgkill(2).
    static func signalThread(process: Int32, thread: Int32, _ signal: Int32) throws {
        try SystemCall.run("tgkill", "thread \(thread) of process \(process)") {
            cptrace_tgkill(process, thread, signal)
        }
    }
}

/// CLOCK_MONOTONIC time, for deadlines and pause measurements.
public enum Monotonic {
    /// A point in monotonic time, in nanoseconds.
    public struct Instant: Comparable, Sendable {
        /// Nanoseconds since an arbitrary start.
        public let nanoseconds: UInt64
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
        /// This instant moved `microseconds` later.
        public func adding(microseconds: UInt64) -> Instant { Instant(nanoseconds: nanoseconds + microseconds * 1000) }
        /// Microseconds from `earlier` to this instant (0 if `earlier` is later).
        public func microseconds(since earlier: Instant) -> UInt64 {
            nanoseconds >= earlier.nanoseconds ? (nanoseconds - earlier.nanoseconds) / 1000 : 0
        }
    }

    /// The current time. clock_gettime(CLOCK_MONOTONIC).
    public static var now: Instant {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Instant(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }

    /// Sleeps at least `microseconds`. nanosleep(2).
    public static func sleep(microseconds: UInt64) {
        var spec = timespec(tv_sec: Int(microseconds / 1_000_000), tv_nsec: Int(microseconds % 1_000_000) * 1000)
        var remaining = timespec()
        while nanosleep(&spec, &remaining) == -1 && errno == EINTR { spec = remaining }
    }
}
