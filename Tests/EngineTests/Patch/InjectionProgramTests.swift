import Architecture
import Foundation
import Glibc
import Testing

/// Injection programs (`InjectionProgram`, x86-64 `InjectionProgramCode`) run in this very test
/// process: a trampoline moves the stack pointer into a buffer of the test (where the program keeps
/// its results) and jumps to the program, and a stand-in for the stub (`syscall`, then back to the
/// caller's stack and `ret`) makes its ending and returns. The program touches only registers a C
/// function may clobber; every call it makes is a real system call of this process.
private enum InProcess {
    /// Where the program and the stand-in stub sit in the page, after the trampoline.
    static let programOffset = 0x100, stubOffset = 0x800
    static let calls = X86_64.systemCalls
    /// getpid(2): an ending without effect.
    static let noEffect = InjectionProgram.Ending(number: 39, arguments: [])

    /// Runs `program` and returns its results (nil where a call did not run).
    static func run(_ program: InjectionProgram) throws -> [Int64?] {
        // Encoded as the loader does: once to learn its size, then placed before the stub.
        let encoded = X86_64.injectionProgram(X86_64.injectionProgram(program, stubDistance: 0), stubDistance: stubOffset - programOffset)
        #expect(encoded.bytes.count <= stubOffset - programOffset)
        guard let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), page != MAP_FAILED,
              let stack = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), stack != MAP_FAILED else {
            throw POSIXError(.ENOMEM)
        }
        defer { munmap(page, 4096); munmap(stack, 4096) }
        let slots = UInt64(UInt(bitPattern: stack)) + 2048
        var trampoline: [UInt8] = [0x53, 0x48, 0x89, 0xE3, 0x48, 0xBC]         // push rbx; mov rbx, rsp; mov rsp, imm64
        withUnsafeBytes(of: slots.littleEndian) { trampoline += $0 }
        trampoline.append(0xE9)                                                 // jmp program
        withUnsafeBytes(of: Int32(programOffset - (trampoline.count + 4)).littleEndian) { trampoline += $0 }
        let stub = X86_64.systemCallInstruction + [0x48, 0x89, 0xDC, 0x5B, 0xC3]  // syscall; mov rsp, rbx; pop rbx; ret
        let bytes = page.assumingMemoryBound(to: UInt8.self)
        for (offset, part) in [(0, trampoline), (programOffset, encoded.bytes), (stubOffset, stub)] {
            for (index, byte) in part.enumerated() { bytes[offset + index] = byte }
        }
        guard mprotect(page, 4096, PROT_READ | PROT_EXEC) == 0 else { throw POSIXError(.EPERM) }
        let code = unsafeBitCast(page, to: (@convention(c) () -> Void).self)
        code()
        let words = UnsafeRawPointer(bitPattern: UInt(slots))!
        return EncodedInjectionProgram.results(from: (0..<8 * encoded.resultCount).map { words.load(fromByteOffset: $0, as: UInt8.self) })
    }

    /// A file of two pages, `A`s then `B`s, and its path as a C string (to be freed).
    static func twoPageFile() throws -> (path: String, cString: UnsafeMutablePointer<CChar>) {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).resolvingSymlinksInPath()
        let path = directory.appendingPathComponent("injection-program-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        var content = Data(repeating: 0x41, count: 4096)
        content.append(Data(repeating: 0x42, count: 4096))
        try content.write(to: URL(fileURLWithPath: path))
        return (path, strdup(path))
    }

    /// A range of `pages` pages reserved (PROT_NONE) for the program to map over with MAP_FIXED:
    /// other tests run in this process at the same time, and a range given back could be theirs.
    static func reservedRange(pages: Int) -> UInt64 {
        let reserved = mmap(nil, pages * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        return UInt64(UInt(bitPattern: reserved))
    }

    /// Whether this process holds a descriptor for `path` (by name: a number may be reused at once
    /// by another test).
    static func holdsDescriptor(for path: String) -> Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == path }
    }
}

private let openFlags = UInt64(UInt32(bitPattern: O_RDONLY | O_CLOEXEC))
private let atCurrentDirectory = UInt64(bitPattern: -100)

@Test func injectionProgram_runsEveryCallWithItsArgumentsAndClosesTheDescriptorAfter() throws {
    let (path, cPath) = try InProcess.twoPageFile()
    defer { free(cPath); unlink(path) }
    let address = InProcess.reservedRange(pages: 1)
    defer { munmap(UnsafeMutableRawPointer(bitPattern: UInt(address)), 4096) }
    let calls = InProcess.calls
    let program = InjectionProgram(calls: [
        .init(number: calls.openat, arguments: [.value(atCurrentDirectory), .value(UInt64(UInt(bitPattern: cPath))), .value(openFlags), .value(0)],
              expectation: .descriptor),
        // The file's second page, at a fixed address: the descriptor comes from the first call.
        .init(number: calls.mmap, arguments: [.value(address), .value(4096), .value(UInt64(PROT_READ)),
                                             .value(UInt64(MAP_PRIVATE | MAP_FIXED)), .resultOf(0), .value(4096)],
              expectation: .value(address)),
    ], cleanups: [.init(number: calls.close, arguments: [.resultOf(0)], guardArgument: 0)], ending: InProcess.noEffect)
    let results = try InProcess.run(program)
    #expect(results.count == 3)
    let fd = try #require(results[0])
    #expect(fd >= 0)
    #expect(results[1] == Int64(bitPattern: address))
    #expect(results[2] == 0, "close ran and succeeded")
    #expect(!InProcess.holdsDescriptor(for: path), "the descriptor is closed")
    #expect(UnsafePointer<UInt8>(bitPattern: UInt(address))!.pointee == 0x42, "the second page is mapped there")
}

@Test func injectionProgram_whenACallFails_skipsTheRestButStillRunsTheCleanup() throws {
    let (path, cPath) = try InProcess.twoPageFile()
    defer { free(cPath); unlink(path) }
    let address = InProcess.reservedRange(pages: 2)
    defer { munmap(UnsafeMutableRawPointer(bitPattern: UInt(address)), 2 * 4096) }
    let calls = InProcess.calls
    let fixed = UInt64(MAP_PRIVATE | MAP_FIXED)
    let program = InjectionProgram(calls: [
        .init(number: calls.openat, arguments: [.value(atCurrentDirectory), .value(UInt64(UInt(bitPattern: cPath))), .value(openFlags), .value(0)],
              expectation: .descriptor),
        .init(number: calls.mmap, arguments: [.value(address), .value(4096), .value(UInt64(PROT_READ)), .value(fixed), .resultOf(0), .value(0)],
              expectation: .value(address)),
        // A misaligned address: EINVAL, in the middle of the program.
        .init(number: calls.mmap, arguments: [.value(address + 4097), .value(4096), .value(UInt64(PROT_READ)), .value(fixed), .resultOf(0), .value(0)],
              expectation: .value(address + 4097)),
        .init(number: calls.mmap, arguments: [.value(address + 4096), .value(4096), .value(UInt64(PROT_READ)), .value(fixed), .resultOf(0), .value(4096)],
              expectation: .value(address + 4096)),
    ], cleanups: [.init(number: calls.close, arguments: [.resultOf(0)], guardArgument: 0)], ending: InProcess.noEffect)
    let results = try InProcess.run(program)
    #expect((results[0] ?? -1) >= 0)
    #expect(results[1] == Int64(bitPattern: address))
    #expect(results[2] == -Int64(EINVAL), "the failing call's errno is kept")
    #expect(results[3] == nil, "nothing runs after the failure")
    #expect(results[4] == 0, "the cleanup still closes the descriptor")
    #expect(!InProcess.holdsDescriptor(for: path))
}

@Test func injectionProgram_whenTheDescriptorCannotBeOpened_runsNoCallOnItAndNoCleanup() throws {
    let missing = strdup("/nonexistent/injection-program")!
    defer { free(missing) }
    let calls = InProcess.calls
    let program = InjectionProgram(calls: [
        .init(number: calls.openat, arguments: [.value(atCurrentDirectory), .value(UInt64(UInt(bitPattern: missing))), .value(openFlags), .value(0)],
              expectation: .descriptor),
        .init(number: calls.close, arguments: [.resultOf(0)], expectation: .value(0)),
    ], cleanups: [.init(number: calls.close, arguments: [.resultOf(0)], guardArgument: 0)], ending: InProcess.noEffect)
    let results = try InProcess.run(program)
    #expect(results == [-Int64(ENOENT), nil, nil])
}

@Test func injectionProgram_passesSmallNegativeAndWideArgumentsInEveryRegister() throws {
    // An anonymous mapping above 4 GiB (a 64-bit immediate), with fd -1 (sign-extended) in r8 and
    // offset 0 in r9; MAP_FIXED_NOREPLACE fails with EEXIST if the range is not free, so any
    // argument loaded wrong shows.
    var address: UInt64 = 0
    for candidate in stride(from: UInt64(0x5_0000_0000), to: 0x7_0000_0000, by: 0x1000_0000) {
        if let probe = mmap(UnsafeMutableRawPointer(bitPattern: UInt(candidate)), 4096, PROT_NONE,
                            MAP_PRIVATE | MAP_ANONYMOUS | 0x10_0000, -1, 0), probe != MAP_FAILED {
            munmap(probe, 4096)
            address = candidate
            break
        }
    }
    try #require(address != 0)
    defer { munmap(UnsafeMutableRawPointer(bitPattern: UInt(address)), 4096) }
    let calls = InProcess.calls
    let program = InjectionProgram(calls: [
        .init(number: calls.mmap, arguments: [.value(address), .value(4096), .value(UInt64(PROT_READ | PROT_WRITE)),
                                             .value(UInt64(MAP_PRIVATE | MAP_ANONYMOUS | 0x10_0000)), .value(UInt64.max), .value(0)],
              expectation: .value(address)),
    ], cleanups: [], ending: InProcess.noEffect)
    #expect(try InProcess.run(program) == [Int64(bitPattern: address)])
    UnsafeMutablePointer<UInt8>(bitPattern: UInt(address))!.pointee = 7
    #expect(UnsafePointer<UInt8>(bitPattern: UInt(address))!.pointee == 7, "readable and writable, as asked")
}

@Test func injectionProgram_endsWithItsEndingOnTheStubsSystemCallInstruction() throws {
    // The ending closes the write end of a pipe: it ran, with its argument, on the stand-in stub,
    // and the read end sees the end of the stream.
    var ends: [Int32] = [0, 0]
    try #require(pipe(&ends) == 0)
    defer { close(ends[0]) }
    let ending = InjectionProgram.Ending(number: InProcess.calls.close, arguments: [UInt64(ends[1])])
    #expect(try InProcess.run(InjectionProgram(calls: [], cleanups: [], ending: ending)) == [])
    var byte: UInt8 = 0
    #expect(read(ends[0], &byte, 1) == 0, "no writer is left")
}

@Test func injectionProgram_placedAfterEncoding_isTheCodeEncodedForThatPlace() {
    let calls = X86_64.systemCalls
    let program = InjectionProgram(
        calls: [.init(number: calls.openat, arguments: [.value(UInt64(bitPattern: -100)), .value(0x7f00_0000_1000), .value(0), .value(0)],
                      expectation: .descriptor),
                .init(number: calls.mmap, arguments: [.value(0x7f00_0000_0000), .value(4096), .value(5), .value(0x12), .resultOf(0), .value(0)],
                      expectation: .value(0x7f00_0000_0000))],
        cleanups: [.init(number: calls.close, arguments: [.resultOf(0)], guardArgument: 0)],
        ending: .init(number: calls.tgkill, arguments: [1, 2, 64]))
    let provisional = X86_64.injectionProgram(program, stubDistance: 0)
    for distance in [provisional.bytes.count, 0x800, 4095, -64, Int(Int32.max) - 1] {
        #expect(X86_64.injectionProgram(provisional, stubDistance: distance) == X86_64.injectionProgram(program, stubDistance: distance),
                "stub \(distance) bytes after the program's start")
    }
}
