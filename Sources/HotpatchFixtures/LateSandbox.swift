import Foundation

/// How a process preloaded with `Fixtures/late_sandbox.c` sandboxes itself after it starts: a second
/// thread installs, with `SECCOMP_FILTER_FLAG_TSYNC`, a filter that kills the process on `mmap`.
public struct LateSandbox: Sendable {
    /// Which `mmap` calls the filter kills the process on.
    public enum Filter: String, Sendable {
        /// Every `mmap`.
        case killMmap = "kill-mmap"
        /// An `mmap` asking for `PROT_EXEC` (the program's own stacks and heap still work).
        case killExecutableMmap = "kill-mmap-exec"
    }

    /// The filter installed.
    public var filter: Filter
    /// Armed once the process has this many threads, the sandboxing thread included.
    public var afterThreads: Int
    /// Installed this many microseconds after arming…
    public var delayMicroseconds: Int
    /// …or as soon as the main thread (or the sandboxing thread) shows a tracer, if earlier.
    public var onTrace: Bool
    /// With `SECCOMP_FILTER_FLAG_TSYNC` (every thread); without it, the sandboxing thread alone.
    public var everyThread: Bool
    /// The main thread alone installs it (without TSYNC), asked by the sandboxing thread.
    public var mainThreadOnly: Bool

    /// Describes a late sandbox.
    public init(filter: Filter, afterThreads: Int = 1, delayMicroseconds: Int = 0, onTrace: Bool = false, everyThread: Bool = true,
                mainThreadOnly: Bool = false) {
        self.filter = filter
        self.afterThreads = afterThreads
        self.delayMicroseconds = delayMicroseconds
        self.onTrace = onTrace
        self.everyThread = everyThread
        self.mainThreadOnly = mainThreadOnly
    }

    /// The environment that preloads `library` (see `FixtureBuilder.lateSandbox()`) with these
    /// settings, on top of the caller's own.
    public func environment(library: String) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = library
        environment["LATE_SANDBOX_FILTER"] = filter.rawValue
        environment["LATE_SANDBOX_AFTER_THREADS"] = String(afterThreads)
        environment["LATE_SANDBOX_DELAY_US"] = String(delayMicroseconds)
        environment["LATE_SANDBOX_ON_TRACE"] = onTrace ? "1" : "0"
        environment["LATE_SANDBOX_TSYNC"] = everyThread ? "1" : "0"
        environment["LATE_SANDBOX_MAIN_ONLY"] = mainThreadOnly ? "1" : "0"
        return environment
    }

    /// The seccomp mode of `pid`, or of its thread `tid` (`Seccomp:` in /proc/PID/status or
    /// /proc/PID/task/TID/status): 2 once the filter is installed.
    public static func seccompMode(of pid: Int32, thread tid: Int32? = nil) -> Int? {
        let path = tid.map { "/proc/\(pid)/task/\($0)/status" } ?? "/proc/\(pid)/status"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Seccomp:") }) else { return nil }
        return Int(line.dropFirst("Seccomp:".count).trimmingCharacters(in: .whitespaces))
    }
}

extension FixtureBuilder {
    /// The build-id of `lateSandboxVictim()`: no other fixture has it, so no agent that another
    /// test runs on this machine (with the shared victims' hotpatches) ever touches these victims.
    public static let lateSandboxVictimBuildID = "5ecc0b5a4db0c4e1a7e5a11d00000014"

    /// The late-sandbox library (`Fixtures/late_sandbox.c`), to preload into a program.
    public func lateSandbox() throws -> String {
        try build("late_sandbox.c", flags: ["-O2", "-shared", "-fPIC", "-pthread"], suffix: ".so")
    }

    /// The victim (`Fixtures/victim.c`, built as `victim()`) with a build-id of its own
    /// (`lateSandboxVictimBuildID`), for tests that preload the late sandbox into it.
    public func lateSandboxVictim() throws -> String {
        try build("victim.c", flags: ["-O0", "-g", "-pthread", "-fno-inline", "-Wl,--build-id=0x" + Self.lateSandboxVictimBuildID],
                  as: "late-sandbox-victim")
    }
}
