import Foundation
import Glibc
import LinuxSystem
import Synchronization
import Testing
@testable import Engine

@Test func processDirectory_whenChildSleeps_readsWhatThePathsRead() throws {
    let child = try SleepingChild()
    defer { child.stop() }
    let directory = try ProcessDirectory(child.pid)
    #expect(directory.exists)
    #expect(try ProcFS.identity(of: directory) == ProcFS.identity(of: child.pid))
    #expect(try ProcFS.maps(of: directory) == ProcFS.maps(of: child.pid))
    #expect(try ProcFS.executablePath(of: directory) == ProcFS.executablePath(of: child.pid))
    #expect(ProcFS.cgroup(of: directory) == ProcFS.cgroup(of: child.pid))
    #expect(try directory.threadIDs() == [ThreadID(child.pid.rawValue)])
    let status = try ProcFS.status(of: directory)
    #expect(status.processID == child.pid && status.name == "sleep")
    #expect(try ProcFS.status(of: directory, thread: ThreadID(child.pid.rawValue)).processID == child.pid)
    #expect(ProcessDirectory.identified(try ProcFS.identity(of: child.pid)) != nil)
}

@Test func processDirectory_threadIDs_listsEveryThreadOfAThreadedProcess() throws {
    // This test process: the pool's threads come and go, so the listing is compared with the
    // kernel's listing around it, through the path.
    let directory = try ProcessDirectory(ProcessID.current)
    let before = Set(try ProcFS.threadIDs(of: ProcessID.current))
    let listed = try directory.threadIDs()
    let after = Set(try ProcFS.threadIDs(of: ProcessID.current))
    #expect(listed == listed.sorted() && Set(listed).count == listed.count)
    #expect(before.intersection(after).isSubset(of: Set(listed)), "every thread listed before and after is listed")
    #expect(Set(listed).isSubset(of: before.union(after)))
    #expect(listed.contains(ThreadID.current) && listed.contains(ThreadID(ProcessID.current.rawValue)))
    // A thread's status through the directory is the thread's own, the main thread's the process's
    // `status` (the kernel prints both from the main thread).
    let main = ThreadID(ProcessID.current.rawValue)
    let throughDirectory = try ProcFS.status(of: directory, thread: main)
    let throughTask = try ProcFS.status(of: ProcessID.current, thread: main)
    #expect(throughDirectory.name == throughTask.name && throughDirectory.userIDs == throughTask.userIDs
            && throughDirectory.seccompMode == throughTask.seccompMode && throughDirectory.tracer == throughTask.tracer)
    if ThreadID.current != main {
        #expect(try ProcFS.status(of: directory, thread: ThreadID.current).name == ProcFS.status(of: ProcessID.current, thread: ThreadID.current).name)
    }
}

@Test func threadListing_afterThreadsStartAndEnd_listsThemAgainFromTheSameOpenFolder() throws {
    let listing = try ProcessDirectory(ProcessID.current).threadListing()
    let started = DispatchSemaphore(value: 0), finish = DispatchSemaphore(value: 0), ended = DispatchSemaphore(value: 0)
    let tids = Mutex<[ThreadID]>([])
    for _ in 0..<3 {
        Thread.detachNewThread {
            tids.withLock { $0.append(ThreadID.current) }
            started.signal()
            finish.wait()
            ended.signal()
        }
    }
    for _ in 0..<3 { started.wait() }
    let ours = Set(tids.withLock { $0 })
    let during = Set(try listing.threadIDs())
    #expect(ours.isSubset(of: during), "\(ours) in \(during)")
    for _ in 0..<3 { finish.signal() }
    for _ in 0..<3 { ended.wait() }
    // A thread that signalled is on its way out: wait until the kernel has removed all three.
    var after = Set(try listing.threadIDs())
    for _ in 0..<1000 where !after.isDisjoint(with: ours) {
        usleep(1000)
        after = Set(try listing.threadIDs())
    }
    #expect(after.isDisjoint(with: ours), "\(ours) gone from \(after)")
    #expect(after.contains(ThreadID.current))
}

@Test func threadListing_whenTheProcessIsReaped_saysGone() throws {
    let child = try SleepingChild()
    let listing = try ProcessDirectory(child.pid).threadListing()
    #expect(try listing.threadIDs() == [ThreadID(child.pid.rawValue)])
    child.stop()
    #expect { _ = try listing.threadIDs() } throws: { $0.isProcessGone }
}

@Test func processDirectory_answersAMappingQueryOnTheMapsItRead_asAQueryByPathDoes() throws {
    let child = try SleepingChild()
    let directory = try ProcessDirectory(child.pid)
    let text = try #require(try ProcFS.maps(of: directory).first { $0.isExecutable && $0.isFileBacked && !$0.isShared })
    let address = text.start + 16
    let answer = Result { () throws(SystemError) in try ProcFS.privateExecutableFileMapping(of: directory, covering: address) }
    if case let .failure(error) = answer, error.errno == ENOTTY || error.errno == EINVAL {
        child.stop()
        return  // a kernel before 6.11 answers no such question
    }
    let byDirectory = try answer.get()
    let byPath = try ProcFS.privateExecutableFileMapping(of: child.pid, covering: address)
    #expect(byDirectory != nil && byDirectory == byPath)
    #expect(byDirectory?.start == text.start && byDirectory?.inode == text.inode)
    // Asked again on the same kept file: the same answer, and none for an address nothing maps.
    #expect(try ProcFS.privateExecutableFileMapping(of: directory, covering: address) == byDirectory)
    #expect(try ProcFS.privateExecutableFileMapping(of: directory, covering: 0x1000) == nil)
    child.stop()
    // The process gone, the kept file answers nothing of it.
    let afterwards = (try? ProcFS.privateExecutableFileMapping(of: directory, covering: address)) ?? nil
    #expect(afterwards == nil)
}

@Test func processDirectory_whenChildIsReaped_existsIsFalseAndEveryReadSaysGone() throws {
    let child = try SleepingChild()
    let directory = try ProcessDirectory(child.pid)
    let identity = try ProcFS.identity(of: directory)
    child.stop()
    #expect(!directory.exists)
    #expect(ProcessDirectory.identified(identity) == nil)
    for read in [{ _ = try ProcFS.maps(of: directory) }, { _ = try ProcFS.status(of: directory) },
                 { _ = try ProcFS.identity(of: directory) }, { _ = try directory.threadIDs() },
                 { _ = try ProcFS.executablePath(of: directory) }] {
        #expect { try read() } throws: { $0.isProcessGone }
    }
    #expect(ProcFS.cgroup(of: directory) == nil)
    #expect { _ = try ProcessDirectory(child.pid) } throws: { $0.isProcessGone }
}

@Test func processDirectory_whenAnotherProcessTakesThePid_readsNothingOfIt() throws {
    let (directory, reused) = try childOnAReusedPid()
    defer { reused.stop() }
    // The pid is alive again, as another process: the old directory knows it is not its own.
    #expect(try ProcFS.status(of: reused.pid).processID == reused.pid)
    #expect(!directory.exists)
    #expect { _ = try ProcFS.maps(of: directory) } throws: { $0.isProcessGone }
    #expect { _ = try directory.threadIDs() } throws: { $0.isProcessGone }
    #expect { _ = try ProcessMemory(directory) } throws: { $0.isProcessGone }
}

/// A directory opened for a child that was then reaped, and a new child that took its pid.
func childOnAReusedPid() throws -> (directory: ProcessDirectory, child: SleepingChild) {
    for _ in 0..<20 {
        let first = try SleepingChild()
        let directory = try ProcessDirectory(first.pid)
        first.stop()
        try handOutNext(pid: first.pid.rawValue)
        let second = try SleepingChild()
        if second.pid == first.pid { return (directory, second) }
        second.stop()
    }
    throw SystemError(call: "fork", errno: EAGAIN, subject: "a child on a reused pid (20 tries, each pid taken by another process first)")
}

/// Makes the kernel hand out `pid` to the next process started in this pid namespace
/// (/proc/sys/kernel/ns_last_pid, written as root). A process started meanwhile elsewhere takes it
/// first: callers check the pid they got and try again.
func handOutNext(pid: Int32) throws {
    let lastPid = try OpenFile(path: "/proc/sys/kernel/ns_last_pid", flags: O_WRONLY)
    let text = Array("\(pid - 1)".utf8)
    guard write(lastPid.raw, text, text.count) == text.count else {
        throw SystemError(call: "write", errno: errno, subject: "/proc/sys/kernel/ns_last_pid")
    }
}
