import Glibc

/// Every fixture process the benchmark started, in a fixed table a signal handler can walk: on
/// Ctrl-C, SIGTERM, SIGHUP or a crash, each one is killed before the benchmark itself dies, so no
/// victim or sleeper outlives it. Slots are written only by the main thread.
enum ChildGuard {
    static let capacity = 1 << 16
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<Int32> = {
        let table = UnsafeMutablePointer<Int32>.allocate(capacity: capacity)
        table.initialize(repeating: 0, count: capacity)
        return table
    }()
    nonisolated(unsafe) private static var used = 0

    /// The handlers that were in place before ours (the Swift runtime's backtracer for crashes).
    nonisolated(unsafe) static let previous: UnsafeMutablePointer<sigaction> = {
        let table = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
        table.initialize(repeating: sigaction(), count: 65)
        return table
    }()

    /// Installs the handlers; call before starting any child.
    static func install() {
        _ = slots  // initialise the tables outside any signal handler
        _ = previous
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { received in
                for index in 0..<ChildGuard.capacity where ChildGuard.slots[index] > 0 {
                    kill(ChildGuard.slots[index], SIGKILL)
                }
                if received == SIGINT || received == SIGTERM || received == SIGHUP || received == SIGQUIT {
                    // Stop, even where the signal was inherited as ignored (a background job).
                    Glibc.signal(received, SIG_DFL)
                } else {
                    // A crash: let the runtime's backtracer (or the default action) have it.
                    sigaction(received, ChildGuard.previous + Int(received), nil)
                }
                raise(received)
            }
            action.sa_flags = 0
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, previous + Int(signal))
        }
    }

    /// Remembers `pid`; returns its slot.
    static func add(_ pid: Int32) -> Int {
        for index in 0..<capacity {
            let slot = (used + index) % capacity
            if slots[slot] == 0 {
                slots[slot] = pid
                used = slot + 1
                return slot
            }
        }
        return -1
    }

    /// Forgets a slot (call after the process was killed, before it is reaped).
    static func remove(_ slot: Int) {
        if slot >= 0 { slots[slot] = 0 }
    }
}
