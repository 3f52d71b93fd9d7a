import Glibc
import LinuxSystem

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
        // Interrupted by a signal: sleep what remains.
        _ = try? SystemCall.run("nanosleep", "\(microseconds) µs") { () -> Int32 in
            defer { spec = remaining }
            return nanosleep(&spec, &remaining)
        }
    }
}
