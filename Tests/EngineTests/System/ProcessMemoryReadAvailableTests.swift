import Glibc
import LinuxSystem
import Testing
@testable import Engine

/// `ProcessMemory.readAvailable(at:count:)`, the read a hold makes of each thread's stack: a
/// region that runs into an unmapped page keeps its readable bytes, and one that starts there
/// gives none, without failing.
@Suite struct ProcessMemoryReadAvailableTests {
    @Test func readAvailable_givesTheBytesUpToAnUnmappedPage() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // Two pages, the second unmapped again: the first page's last bytes end at a hole.
        let base = try #require(mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        #expect(base != MAP_FAILED)
        defer { munmap(base, page) }
        #expect(munmap(base + page, page) == 0)
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        for index in 0..<page { bytes[index] = UInt8(truncatingIfNeeded: index &* 7) }
        let start = UInt64(UInt(bitPattern: base))
        let memory = try ProcessMemory(pid: .current)

        #expect(memory.readAvailable(at: start + 256, count: 512) == (256..<768).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        #expect(memory.readAvailable(at: start + UInt64(page) - 100, count: 512)
                == (page - 100..<page).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        #expect(memory.readAvailable(at: 0x1000, count: 512).isEmpty)
        #expect(memory.readAvailable(at: start, count: 0).isEmpty)
    }
}
