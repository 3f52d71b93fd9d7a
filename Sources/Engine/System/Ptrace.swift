import Architecture
import CPtrace
import Glibc
import LinuxSystem

/// The general registers of a stopped thread: the kernel's register block (PTRACE_GETREGS), read
/// and written by word index as `HostArchitecture` describes it, so no C type and no register name
/// leaves this file.
struct ThreadRegisters: Sendable, Equatable, RegisterWords {
    fileprivate(set) var raw: cptrace_regs

    /// The registers in the kernel's block `raw`.
    init(raw: cptrace_regs) { self.raw = raw }

    /// How many words the block holds; `HostArchitecture.registerWordCount` must say the same.
    static let wordCount = MemoryLayout<cptrace_regs>.size / 8

    /// Word `index` of the register block.
    subscript(word index: Int) -> UInt64 {
        get {
            precondition(index >= 0 && index < ThreadRegisters.wordCount, "register word \(index) out of range")
            return withUnsafeBytes(of: raw) { $0.load(fromByteOffset: index * 8, as: UInt64.self) }
        }
        set {
            precondition(index >= 0 && index < ThreadRegisters.wordCount, "register word \(index) out of range")
            withUnsafeMutableBytes(of: &raw) { $0.storeBytes(of: newValue, toByteOffset: index * 8, as: UInt64.self) }
        }
    }

    /// The instruction pointer.
    var instructionPointer: UInt64 {
        get { self[word: HostArchitecture.instructionPointerWord] }
        set { self[word: HostArchitecture.instructionPointerWord] = newValue }
    }

    /// The stack pointer.
    var stackPointer: UInt64 {
        get { self[word: HostArchitecture.stackPointerWord] }
        set { self[word: HostArchitecture.stackPointerWord] = newValue }
    }

    /// The system call the thread is in at a system call stop; nil when none.
    var currentSystemCall: Int? { HostArchitecture.currentSystemCall(self) }

    /// The result of the system call at its exit stop (a negative value is -errno).
    var systemCallResult: Int64 { HostArchitecture.systemCallResult(self) }

    /// Where the thread will execute next when resumed. A thread stopped inside a restartable
    /// system call is moved back onto its system call instruction by the kernel, so that is where
    /// it resumes (`Architecture.resumed`).
    var resumeAddress: UInt64 { HostArchitecture.resumed(self).instructionPointer }

    /// Sets the registers to run system call `number` with `arguments` on the instruction at
    /// `instruction` (`Architecture.prepareSystemCall`).
    mutating func prepareSystemCall(number: Int, arguments: [UInt64], at instruction: UInt64) {
        HostArchitecture.prepareSystemCall(&self, number: number, arguments: arguments, at: instruction)
    }

    /// At a system call entry stop, replaces the call the kernel is about to run.
    mutating func replaceEnteringSystemCall(number: Int, arguments: [UInt64]) {
        HostArchitecture.replaceEnteringSystemCall(&self, number: number, arguments: arguments)
    }

    static func == (lhs: ThreadRegisters, rhs: ThreadRegisters) -> Bool {
        withUnsafeBytes(of: lhs.raw) { l in withUnsafeBytes(of: rhs.raw) { r in l.elementsEqual(r) } }
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
}

/// The ptrace(2) verbs the Engine uses, each through `SystemCall.run` (LinuxSystem); the only caller of the
/// C shim. All requests for a tracee must come from the OS thread that seized it.
enum Ptrace {
    /// PTRACE_O_* options of a seize.
    struct Options: OptionSet {
        let rawValue: UInt
        /// PTRACE_O_TRACESYSGOOD: system call stops report SIGTRAP|0x80, told apart from a real SIGTRAP.
        static let markSystemCallStops = Options(rawValue: UInt(CPTRACE_O_TRACESYSGOOD))
        /// PTRACE_O_TRACECLONE: new threads are traced (and stopped) from birth.
        static let traceClones = Options(rawValue: UInt(CPTRACE_O_TRACECLONE))
        /// PTRACE_O_TRACEEXEC: a successful execve stops with PTRACE_EVENT_EXEC instead of a SIGTRAP.
        static let traceExec = Options(rawValue: UInt(CPTRACE_O_TRACEEXEC))
    }

    /// PTRACE_EVENT_CLONE: the thread created a thread, whose id `eventMessage` gives.
    static let cloneEvent = Int32(CPTRACE_EVENT_CLONE)
    /// PTRACE_EVENT_EXEC: the thread finished an execve (its new program is mapped, nothing of it ran).
    static let execEvent = Int32(CPTRACE_EVENT_EXEC)
    /// PTRACE_EVENT_STOP: an interrupt stop (or a group stop, or a new clone's first stop).
    static let interruptEvent = Int32(CPTRACE_EVENT_STOP)

    /// Attaches without stopping. PTRACE_SEIZE.
    static func seize(_ tid: ThreadID, options: Options) throws(SystemError) {
        try SystemCall.run("ptrace(PTRACE_SEIZE)", "thread \(tid)") { cptrace_seize(tid.rawValue, options.rawValue) }
    }

    /// Asks a seized thread to stop. PTRACE_INTERRUPT.
    static func interrupt(_ tid: ThreadID) throws(SystemError) {
        try SystemCall.run("ptrace(PTRACE_INTERRUPT)", "thread \(tid)") { cptrace_interrupt(tid.rawValue) }
    }

    /// Detaches, delivering `signal` (0 for none). PTRACE_DETACH.
    static func detach(_ tid: ThreadID, signal: Int32 = 0) throws(SystemError) {
        try SystemCall.run("ptrace(PTRACE_DETACH)", "thread \(tid)") { cptrace_detach(tid.rawValue, signal) }
    }

    /// Resumes, delivering `signal` (0 for none). PTRACE_CONT.
    static func resume(_ tid: ThreadID, signal: Int32 = 0) throws(SystemError) {
        try SystemCall.run("ptrace(PTRACE_CONT)", "thread \(tid)") { cptrace_cont(tid.rawValue, signal) }
    }

    /// Resumes until the next system call entry or exit (or signal). PTRACE_SYSCALL.
    static func resumeToSystemCall(_ tid: ThreadID, signal: Int32 = 0) throws(SystemError) {
        try SystemCall.run("ptrace(PTRACE_SYSCALL)", "thread \(tid)") { cptrace_syscall(tid.rawValue, signal) }
    }

    /// Executes one instruction, then stops. PTRACE_SINGLESTEP.
    static func singleStep(_ tid: ThreadID) throws(SystemError) {
        try SystemCall.run("ptrace(PTRACE_SINGLESTEP)", "thread \(tid)") { cptrace_singlestep(tid.rawValue, 0) }
    }

    /// Reads the general registers. PTRACE_GETREGS.
    static func registers(_ tid: ThreadID) throws(SystemError) -> ThreadRegisters {
        var regs = cptrace_regs()
        try SystemCall.run("ptrace(PTRACE_GETREGS)", "thread \(tid)") { cptrace_getregs(tid.rawValue, &regs) }
        return ThreadRegisters(raw: regs)
    }

    /// Writes the general registers. PTRACE_SETREGS.
    static func setRegisters(_ tid: ThreadID, _ registers: ThreadRegisters) throws(SystemError) {
        var regs = registers.raw
        try SystemCall.run("ptrace(PTRACE_SETREGS)", "thread \(tid)") { cptrace_setregs(tid.rawValue, &regs) }
    }

    /// The thread's blocked-signal mask. PTRACE_GETSIGMASK.
    static func signalMask(_ tid: ThreadID) throws(SystemError) -> UInt64 {
        var mask: UInt64 = 0
        try SystemCall.run("ptrace(PTRACE_GETSIGMASK)", "thread \(tid)") { cptrace_getsigmask(tid.rawValue, &mask) }
        return mask
    }

    /// Replaces the thread's blocked-signal mask. PTRACE_SETSIGMASK.
    static func setSignalMask(_ tid: ThreadID, _ mask: UInt64) throws(SystemError) {
        try SystemCall.run("ptrace(PTRACE_SETSIGMASK)", "thread \(tid)") { cptrace_setsigmask(tid.rawValue, mask) }
    }

    /// The message of the last ptrace event (a new thread's id after PTRACE_EVENT_CLONE).
    /// PTRACE_GETEVENTMSG.
    static func eventMessage(_ tid: ThreadID) throws(SystemError) -> UInt {
        var message: UInt = 0
        try SystemCall.run("ptrace(PTRACE_GETEVENTMSG)", "thread \(tid)") { cptrace_geteventmsg(tid.rawValue, &message) }
        return message
    }

    /// The seccomp filters of a stopped thread, most recently installed first.
    /// PTRACE_SECCOMP_GET_FILTER (needs CAP_SYS_ADMIN).
    static func seccompFilters(_ tid: ThreadID) throws(SystemError) -> [[BPFInstruction]] {
        var filters: [[BPFInstruction]] = []
        var index: UInt = 0
        while true {
            let count = cptrace_seccomp_get_filter(tid.rawValue, index, nil)
            if count == -1 {
                // ENOENT marks the end of the list.
                if Glibc.errno == ENOENT { return filters }
                throw SystemError(call: "ptrace(PTRACE_SECCOMP_GET_FILTER)", errno: Glibc.errno,
                                  subject: "thread \(tid), filter \(index)")
            }
            var program = [cptrace_bpf_insn](repeating: cptrace_bpf_insn(), count: count)
            try SystemCall.run("ptrace(PTRACE_SECCOMP_GET_FILTER)", "thread \(tid), filter \(index)") {
                cptrace_seccomp_get_filter(tid.rawValue, index, &program)
            }
            filters.append(program.map { BPFInstruction(code: $0.code, jumpIfTrue: $0.jt, jumpIfFalse: $0.jf, k: $0.k) })
            index += 1
        }
    }

    /// Waits for any event of a tracee of this OS thread, without blocking; nil when none is ready.
    /// waitpid(-1, WNOHANG|__WALL|__WNOTHREAD): one loop for every thread, so a dead leader never
    /// makes us wait on siblings first.
    static func pollEvent() throws(SystemError) -> (tid: ThreadID, event: TraceEvent)? {
        var status: Int32 = 0
        let tid = try SystemCall.run("waitpid", "tracees") {
            waitpid(-1, &status, WNOHANG | __WALL | __WNOTHREAD)
        }
        if tid == 0 { return nil }
        return (ThreadID(tid), decode(status))
    }

    /// The event of tracee `tid` if one is ready, without blocking; nil when none is. ECHILD when
    /// `tid` is no tracee of this OS thread (any more). waitpid(tid, WNOHANG|__WALL|__WNOTHREAD).
    static func pollEvent(of tid: ThreadID) throws(SystemError) -> TraceEvent? {
        var status: Int32 = 0
        let found = try SystemCall.run("waitpid", "thread \(tid)") {
            waitpid(tid.rawValue, &status, WNOHANG | __WALL | __WNOTHREAD)
        }
        return found == 0 ? nil : decode(status)
    }

    /// Waits up to `deadline` for the next tracee event. It blocks in waitpid (so the CPU is free
    /// for the very tracee it waits for) and a per-thread timer interrupts it at the deadline.
    /// An event already there is taken without arming the timer, unless `expectingNone` (a tracee
    /// just resumed to run injected calls: the look would find nothing).
    static func nextEvent(until deadline: Monotonic.Instant, expectingNone: Bool = false) throws(SystemError) -> (tid: ThreadID, event: TraceEvent)? {
        var looks = !expectingNone
        while true {
            do {
                if looks, let event = try pollEvent() { return event }
            } catch where error.errno == ECHILD {
                return nil
            }
            looks = true
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
            if tid > 0 { return (ThreadID(tid), decode(status)) }
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
    static func signalThread(process: ProcessID, thread: ThreadID, _ signal: Int32) throws(SystemError) {
        try SystemCall.run("tgkill", "thread \(thread) of process \(process)") {
            cptrace_tgkill(process.rawValue, thread.rawValue, signal)
        }
    }
}
