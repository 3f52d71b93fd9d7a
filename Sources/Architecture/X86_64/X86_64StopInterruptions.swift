import Glibc

extension X86_64 {
    /// epoll_wait, epoll_pwait, epoll_pwait2, rt_sigtimedwait (sigwaitinfo, sigtimedwait), semop and
    /// semtimedop: the calls Linux fails with EINTR when their thread is stopped and resumed, though no
    /// signal handler ran (signal(7), "Interruption of system calls and library functions by stop
    /// signals"). Other blocking calls are restarted by the kernel itself.
    static let callsFailedByStops: Set<Int> = [232, 281, 441, 128, 65, 220]

    /// The call a thread stopped on its way out of it failed with EINTR only because it was stopped
    /// (one of `callsFailedByStops`, rax -EINTR, orig_rax still the call); nil otherwise.
    public static func systemCallFailedByStop(_ registers: some RegisterWords) -> Int? {
        guard let call = currentSystemCall(registers), callsFailedByStops.contains(call),
              systemCallResult(registers) == -Int64(EINTR) else { return nil }
        return call
    }

    /// The registers that run such a call again, as the kernel restarts the others: back onto its
    /// 2-byte system call instruction with the number in rax and nothing pending; nil when the
    /// thread was not in such a call.
    public static func rerunningCallFailedByStop<Registers: RegisterWords>(_ registers: Registers) -> Registers? {
        guard let call = systemCallFailedByStop(registers) else { return nil }
        var rerun = registers
        rerun[word: Word.rax] = UInt64(call)
        rerun[word: Word.rip] = registers[word: Word.rip] &- UInt64(systemCallInstruction.count)
        rerun[word: Word.origRAX] = UInt64.max
        return rerun
    }
}
