import CPtrace
import Glibc
import LinuxSystem

/// The agent's own memory: how much of what it once used it keeps.
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

    /// Unmaps the pages of this process's read-only mappings of the objects it loaded at start (its
    /// executable, its libraries: their code and constants) that hold only the file's own bytes,
    /// and returns how many KiB were mapped.
    ///
    /// Why: a page fault on a file maps the 64 KiB around the page (fault-around), so code run once
    /// at start (configuration, the first pass) stays counted in the resident set: 15 of the idle
    /// agent's 22 MiB of file pages (docs/PERFORMANCE.md). Nothing is lost: the pages stay in the
    /// page cache and a later access maps them again from there. A mapping with any page of its
    /// own (copied on a write: relocated constants, a debugger's breakpoint) is left whole, since
    /// dropping that page would bring back the file's bytes in its place. Only the address ranges
    /// the loaded objects held at the first call are touched: those are never unmapped, so no
    /// other thread can have put memory of its own there since the mappings were read.
    @discardableResult
    public static func unmapIdleFilePages() throws -> UInt64 {
        let path = "/proc/self/smaps"
        let objects = try startupObjects.get()
        var released: UInt64 = 0
        for resident in try ProcSmapsParser.parse(Files.read(path), path: path)
        where resident.holdsOnlyFilePages && resident.residentKiB > 0 {
            let mapping = resident.mapping
            guard objects.contains(where: { $0.holds(mapping) }),
                  let start = UnsafeMutableRawPointer(bitPattern: UInt(mapping.start)) else { continue }
            if (try? SystemCall.run("madvise", mapping.path, { madvise(start, Int(mapping.size), MADV_DONTNEED) })) != nil {
                released += resident.residentKiB
            }
        }
        return released
    }

    /// An ELF object this process had loaded when first asked: its file and the addresses from its
    /// first mapping's start to its last one's end.
    struct LoadedRange: Sendable {
        let file: FileKey
        let range: Range<UInt64>

        /// `mapping` maps this object's file and lies within its addresses.
        func holds(_ mapping: MemoryMapping) -> Bool {
            FileKey(mapping) == file && range.lowerBound <= mapping.start && mapping.end <= range.upperBound
        }

        /// The objects of `mappings`: each file with an executable mapping, over all its mappings
        /// that follow each other without another file's in between.
        static func objects(in mappings: [MemoryMapping]) -> [LoadedRange] {
            let code = Set(mappings.filter { $0.isFileBacked && $0.isExecutable }.map(FileKey.init))
            var ranges: [LoadedRange] = []
            var previous: FileKey?
            for mapping in mappings where mapping.isFileBacked {
                let file = FileKey(mapping)
                defer { previous = file }
                guard code.contains(file) else { continue }
                if previous == file, let last = ranges.last, last.file == file, last.range.upperBound <= mapping.start {
                    ranges[ranges.count - 1] = LoadedRange(file: file, range: last.range.lowerBound..<mapping.end)
                } else {
                    ranges.append(LoadedRange(file: file, range: mapping.start..<mapping.end))
                }
            }
            return ranges
        }
    }

    /// The objects loaded when first asked (at the agent's start: the executable and the libraries
    /// it needs, which stay loaded for its life).
    private static let startupObjects = Result { () throws -> [LoadedRange] in
        LoadedRange.objects(in: try ProcFS.maps(of: ProcessID.current))
    }
}
