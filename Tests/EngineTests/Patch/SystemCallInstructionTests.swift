import Architecture
import LinuxSystem
import Testing
@testable import Engine

/// `PatchLoader.syscallInstruction` finds a system call instruction in a process's vDSO once, and
/// in the next process looks only where the last one had it.
@Test func syscallInstruction_foundInOneProcess_isFoundAtTheSameVDSOOffsetInTheNext_andSearchedForWhenNotThere() throws {
    let first = try SleepingChild(), second = try SleepingChild()
    defer { first.stop(); second.stop() }
    let cache = ObjectCache()
    func find(in child: SleepingChild) throws -> (address: UInt64, vdso: MemoryMapping) {
        let mappings = try ProcFS.maps(of: child.pid)
        let vdso = try #require(mappings.first { $0.path == "[vdso]" })
        let memory = try ProcessMemory(pid: child.pid)
        let found = PatchLoader.syscallInstruction(pid: child.pid, mappings: mappings, memory: memory, cache: cache)
        let address = try #require(found)
        #expect(try memory.read(at: address, count: 2) == HostArchitecture.systemCallInstruction)
        #expect(vdso.start <= address && address < vdso.end)
        return (address, vdso)
    }
    #expect(cache.vdsoSystemCallOffset == nil)
    let one = try find(in: first)
    #expect(cache.vdsoSystemCallOffset == one.address - one.vdso.start)
    let two = try find(in: second)
    #expect(two.address - two.vdso.start == one.address - one.vdso.start)
    // A remembered offset that holds no system call instruction is searched past, and replaced.
    cache.noteVDSOSystemCall(at: 0)
    let three = try find(in: second)
    #expect(three.address == two.address)
    #expect(cache.vdsoSystemCallOffset == one.address - one.vdso.start)
}
