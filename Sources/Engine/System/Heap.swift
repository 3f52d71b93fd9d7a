import CPtrace

/// The agent's own heap (glibc malloc): how much of what it once used it keeps.
public enum Heap {
    /// Arenas the agent's threads share. glibc gives each thread that contends for one its own (up
    /// to eight per CPU), and an arena keeps the peak of what was allocated in it: the four tracer
    /// threads of a pass left 17 MiB of anonymous memory behind in an idle agent, two arenas 11 MiB
    /// (docs/PERFORMANCE.md), with the same pass times.
    public static let arenas: Int32 = 2

    /// Caps the process's malloc arenas at `arenas`; call early (arenas made before stay).
    @discardableResult
    public static func limitArenas(_ arenas: Int32 = Heap.arenas) -> Bool { cptrace_limit_malloc_arenas(arenas) == 1 }

    /// Gives the kernel back the free pages of every arena (after a pass over many processes,
    /// whose buffers are free again).
    @discardableResult
    public static func giveBackFreeMemory() -> Bool { cptrace_trim_heap() == 1 }
}
