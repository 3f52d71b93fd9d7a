import Glibc
import LinuxSystem
import Testing
@testable import Engine

@Test func procFS_whenChildSleeps_listsItAndItsOnlyThread() throws {
    let child = try SleepingChild()
    defer { child.stop() }
    let pids = try ProcFS.processIDs()
    #expect(pids.contains(child.pid) && pids.contains(ProcessID.current))
    #expect(pids == pids.sorted())
    #expect(try ProcFS.threadIDs(of: child.pid) == [ThreadID(child.pid.rawValue)])
}

@Test func procFS_whenChildSleeps_readsMapsStatusAndExecutable() throws {
    let child = try SleepingChild()
    defer { child.stop() }
    let exe = try ProcFS.executablePath(of: child.pid)
    let maps = try ProcFS.maps(of: child.pid)
    #expect(maps.contains { $0.path == exe && $0.isExecutable && $0.isFileBacked }, "\(exe) \(maps)")
    #expect(maps.contains { $0.path == "[stack]" })
    #expect(maps == maps.sorted { $0.start < $1.start })

    let status = try ProcFS.status(of: child.pid)
    #expect(status.name == "sleep")
    #expect(status.threadCount == 1 && status.tracer == nil && status.seccompMode == 0)
    #expect(status.userIDs.real == getuid() && status.userIDs.effective == geteuid())
    #expect(status.processID == child.pid)
}

@Test func procFS_whenAskedForAThreadsProcess_namesTheThreadGroup() throws {
    #expect(try ProcFS.process(ofThread: ThreadID.current) == ProcessID.current)
    // The other threads of this test process, the main one among them (a pool thread may end meanwhile).
    for thread in try ProcFS.threadIDs(of: ProcessID.current) {
        do { #expect(try ProcFS.process(ofThread: thread) == ProcessID.current, "thread \(thread)") } catch where error.isProcessGone {}
    }
}

@Test func procFS_whenChildIsKilledAndReaped_reportsProcessGone() throws {
    let child = try SleepingChild()
    let identity = try ProcFS.identity(of: child.pid)
    #expect(ProcFS.isSameProcess(identity))
    #expect(!ProcFS.isSameProcess(ProcessIdentity(pid: child.pid, startTime: identity.startTime + 1)))
    child.stop()
    #expect(!ProcFS.isSameProcess(identity))
    for read in [{ _ = try ProcFS.maps(of: child.pid) }, { _ = try ProcFS.status(of: child.pid) },
                 { _ = try ProcFS.identity(of: child.pid) }, { _ = try ProcFS.threadIDs(of: child.pid) },
                 { _ = try ProcFS.executablePath(of: child.pid) },
                 { _ = try ProcFS.process(ofThread: ThreadID(child.pid.rawValue)) }] {
        #expect { try read() } throws: { $0.isProcessGone }
    }
}

@Test func procFS_whenChildIsZombie_isNoLongerTheSameProcess() throws {
    let child = try SleepingChild()
    defer { child.stop() }
    let identity = try ProcFS.identity(of: child.pid)
    kill(child.pid.rawValue, SIGKILL)
    var info = siginfo_t()
    // Wait for the exit without reaping (WNOWAIT): the pid stays a zombie.
    _ = waitid(P_PID, id_t(child.pid.rawValue), &info, WEXITED | WNOWAIT)
    #expect(!ProcFS.isSameProcess(identity))
    #expect(try ProcFS.maps(of: child.pid).isEmpty)
}

@Test func procFS_whenKernelThread_givesEmptyMaps() throws {
    let kthreadd = ProcessID(2)
    guard let status = try? ProcFS.status(of: kthreadd), status.name == "kthreadd" else { return }
    #expect(try ProcFS.maps(of: kthreadd).isEmpty)
}

@Test func procFS_whenMappedFileIsDeleted_marksItAndMapFilesStillReachesIt() throws {
    let path = "/tmp/proc-test-\(getpid())-deleted lib.so"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
    try #require(fd >= 0)
    let page = [UInt8](repeating: 0x5a, count: 4096)
    #expect(write(fd, page, page.count) == page.count)
    let address = mmap(nil, 4096, PROT_READ, MAP_PRIVATE, fd, 0)
    try #require(address != MAP_FAILED)
    defer { munmap(address, 4096) }
    close(fd)
    unlink(path)

    let start = UInt64(UInt(bitPattern: address))
    let mapping = try #require(try ProcFS.maps(of: .current).first { $0.start == start })
    #expect(mapping.path == path && mapping.isDeleted && mapping.isFileBacked && mapping.size == 4096)
    let mapFile = ProcFS.mappedFilePath(of: .current, mapping: mapping)
    #expect(mapFile == "/proc/\(getpid())/map_files/\(String(start, radix: 16))-\(String(start + 4096, radix: 16))")
    #expect(try Files.read(mapFile) == page)
}

@Test func procFS_whenMemfdIsMapped_showsMemfdPathMarkedDeleted() throws {
    // memfd_create(2) is declared only under _GNU_SOURCE, so Glibc's module lacks it.
    typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
    let memfdCreate = unsafeBitCast(try #require(dlsym(nil, "memfd_create")), to: MemfdCreate.self)
    let fd = memfdCreate("patch area", 0)
    try #require(fd >= 0)
    defer { close(fd) }
    #expect(ftruncate(fd, 4096) == 0)
    let address = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    try #require(address != MAP_FAILED)
    defer { munmap(address, 4096) }
    let start = UInt64(UInt(bitPattern: address))
    let mapping = try #require(try ProcFS.maps(of: .current).first { $0.start == start })
    #expect(mapping.path == "/memfd:patch area" && mapping.isDeleted && mapping.isShared && mapping.isWritable)
}

@Test func procFS_identityOfCurrentProcess_isStableAndSame() throws {
    let first = try ProcFS.identity(of: .current)
    #expect(try ProcFS.identity(of: .current) == first)
    #expect(ProcFS.isSameProcess(first))
    #expect(ThreadID.current.rawValue > 0)
}

@Test func procFS_bootID_isTrimmedUUID() throws {
    let id = try ProcFS.bootID()
    #expect(id.utf8.count == 36)
    #expect(!id.contains("\n") && !id.contains(" "))
}

@Test func mappedFilePath_namesThePidInDecimalAndTheRangeInLowercaseHex_atTheEdges() {
    func mapping(_ start: UInt64, _ end: UInt64) -> MemoryMapping {
        MemoryMapping(start: start, end: end, isReadable: true, isWritable: false, isExecutable: false, isShared: false,
                      offset: 0, deviceMajor: 0, deviceMinor: 0, inode: 0, path: "", isDeleted: false)
    }
    #expect(ProcFS.mappedFilePath(of: ProcessID(1), mapping: mapping(0, 0x1000)) == "/proc/1/map_files/0-1000")
    #expect(ProcFS.mappedFilePath(of: ProcessID(Int32.max), mapping: mapping(0x7fff_f7a0_c000, .max))
        == "/proc/2147483647/map_files/7ffff7a0c000-ffffffffffffffff")
    #expect(ProcFS.mappedFilePath(of: ProcessID(40960), mapping: mapping(0xabcdef, 0xabcdf0)) == "/proc/40960/map_files/abcdef-abcdf0")
}
