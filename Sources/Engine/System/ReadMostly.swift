import Glibc

/// A value that threads mostly read and rarely change, behind a reader-writer lock: readers share
/// it and never wait for one another, and a thread that must wait sleeps.
///
/// Why not `Mutex`: on Linux it is a priority-inheriting futex, and its waiters spin in the
/// kernel for as long as the holder runs on another CPU. The host pass's workers all read the
/// same cached facts (every process maps the same libc), so they met on that lock in nearly every
/// lookup, and the three that waited while one parsed libc's symbols spun for the whole parse
/// (docs/PERFORMANCE.md, run 18). Writers are preferred, so a steady stream of readers cannot keep
/// a new fact from being added.
final class ReadMostly<Value: Sendable>: @unchecked Sendable {
    // The lock must not move once initialised: it lives in memory of its own.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    private var value: Value

    /// A lock around `value`.
    init(_ value: Value) {
        self.value = value
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        // Fails only for invalid attributes (EINVAL) or lack of memory, neither of which a
        // process-private lock in allocated memory can meet.
        precondition(pthread_rwlock_init(lock, &attributes) == 0, "pthread_rwlock_init failed")
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deinitialize(count: 1)
        lock.deallocate()
    }

    /// `body`'s result on the value, with other readers beside it and no writer.
    func read<Result>(_ body: (Value) throws -> Result) rethrows -> Result {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(value)
    }

    /// `body`'s result on the value, alone: it may change it.
    func write<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(&value)
    }
}
