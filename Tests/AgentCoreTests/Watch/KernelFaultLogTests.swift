@testable import AgentCore
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing

/// The /dev/kmsg records of real faults, as this kernel (6.18, x86-64) writes them.
private enum Records {
    static let segfault = "6,337,186623669,-;segv[4411]: segfault at 0 ip 0000556a9d625139 sp 00007fff74e1ebe0 error 6 in segv[1139,556a9d625000+1000] likely on CPU 1 (core 1, socket 0)"
    static let invalidOpcode = "6,339,186627696,-;traps: ill[4412] trap invalid opcode ip:55c28e58a12d sp:7ffd9b85fcd0 error:0 in ill[112d,55c28e58a000+1000]"
    static let divideError = "6,340,1160019463,-;traps: fault[26285] trap divide error ip:55f2d7ffd2a5 sp:7ffe03d3d400 error:0 in fault[12a5,55f2d7ffd000+1000]"
    static let generalProtection = "6,341,1170000000,-;traps: worker[77] general protection fault ip:7f3a10203040 sp:7ffd00001000 error:0 in libfoo.so.1[3040,7f3a10200000+5000]"
}

@Suite struct KernelFaultRecordTests {
    @Test func segfaultRecord_givesThreadInstructionPointerAndMapping() throws {
        let report = try #require(KernelFaultRecord.parse(Records.segfault))
        #expect(report.sequence == 337)
        #expect(report.timestampMicroseconds == 186_623_669)
        #expect(report.command == "segv")
        #expect(report.threadID == ThreadID(4411))
        #expect(report.kind == "segfault")
        #expect(report.instructionPointer == 0x556a_9d62_5139)
        #expect(report.mapping == .init(name: "segv", start: 0x556a_9d62_5000, size: 0x1000))
        #expect(report.processID == nil, "the parser looks nothing up")
    }

    @Test func trapRecords_giveTheirKindAndMapping() throws {
        let ill = try #require(KernelFaultRecord.parse(Records.invalidOpcode))
        #expect(ill.threadID == ThreadID(4412))
        #expect(ill.command == "ill")
        #expect(ill.kind == "trap invalid opcode")
        #expect(ill.instructionPointer == 0x55c2_8e58_a12d)
        #expect(ill.mapping == .init(name: "ill", start: 0x55c2_8e58_a000, size: 0x1000))

        let fpe = try #require(KernelFaultRecord.parse(Records.divideError))
        #expect(fpe.kind == "trap divide error")
        #expect(fpe.threadID == ThreadID(26285))

        let gp = try #require(KernelFaultRecord.parse(Records.generalProtection))
        #expect(gp.kind == "general protection fault")
        #expect(gp.mapping?.name == "libfoo.so.1")
    }

    @Test func patchImageMappings_keepTheirNames_memfdIncluded() throws {
        let memfd = "6,400,1,-;traps: agent-victim[812] trap invalid opcode ip:7f0000001004 sp:7ffd00001000 error:0 in memfd:hotpatch:ab12.o[4,7f0000001000+2000]"
        #expect(try #require(KernelFaultRecord.parse(memfd)).mapping?.name == "memfd:hotpatch:ab12.o")
        let file = "6,401,1,-;agent-victim[813]: segfault at 8 ip 00007f0000001004 sp 00007ffd00001000 error 4 in ab12.o[4,7f0000001000+2000] likely on CPU 0 (core 0, socket 0)"
        #expect(try #require(KernelFaultRecord.parse(file)).mapping?.name == "ab12.o")
    }

    @Test func olderAndShorterForms_areRead() throws {
        // Before 6.1 the mapping had no file offset; anonymous memory has no mapping part at all.
        let old = "6,10,5,-;nginx[90]: segfault at 10 ip 00007f1c2b3a4d5e sp 00007ffc0a0b0c0d error 4 in libc.so.6[7f1c2b380000+1b0000]"
        #expect(try #require(KernelFaultRecord.parse(old)).mapping == .init(name: "libc.so.6", start: 0x7f1c_2b38_0000, size: 0x1b_0000))
        let anonymous = "6,11,5,-;jit[91]: segfault at 0 ip 00007f0000000000 sp 00007ffc0a0b0c0d error 14 likely on CPU 3 (core 1, socket 0)"
        let report = try #require(KernelFaultRecord.parse(anonymous))
        #expect(report.mapping == nil)
        #expect(report.instructionPointer == 0x7f00_0000_0000)
        let bare = "6,12,5,-;traps: jit[92] trap invalid opcode ip:7f0000000000 sp:7ffc0a0b0c0d error:0"
        #expect(KernelFaultRecord.parse(bare)?.threadID == ThreadID(92))
        // A dictionary line after the message, and a caller field in the prefix.
        #expect(KernelFaultRecord.parse(Records.segfault + "\n SUBSYSTEM=x") != nil)
        #expect(KernelFaultRecord.parse("6,13,5,-,caller=T91;" + Records.segfault.split(separator: ";")[1])?.threadID == ThreadID(4411))
    }

    @Test func namesWithSpacesAndBrackets_stillGiveTheRightThread() throws {
        let report = try #require(KernelFaultRecord.parse("6,1,1,-;my [srv] x[4413]: segfault at 0 ip 0000000000401000 sp 00007ffc00000000 error 4 in my prog [v2][1000,401000+1000] likely on CPU 0 (core 0, socket 0)"))
        #expect(report.threadID == ThreadID(4413))
        #expect(report.command == "my [srv] x")
        #expect(report.mapping?.name == "my prog [v2]")
    }

    @Test func recordsNotFromTheKernel_areIgnored() {
        // Facility 1 (user) and 3 (daemon): what a write to /dev/kmsg or a syslog relay produces.
        for priority in [14, 8, 30, 191] {
            #expect(KernelFaultRecord.parse("\(priority),337,186623669,-;" + Records.segfault.split(separator: ";")[1]) == nil,
                    "priority \(priority)")
        }
    }

    @Test func otherKernelMessagesAndJunk_areIgnored() {
        for record in [
            "", ";", "6,1,1,-;", "garbage", "6,1,1;segv[1]: segfault at 0 ip 0 sp 0 error 4",
            "x,1,1,-;segv[1]: segfault at 0 ip 0 sp 0 error 4",
            "6,1,1,-;Linux version 6.18.44",
            "6,1,1,-;Code: ff c6 05 c5 2e 00 00 01 5d c3 <c7> 00 01",
            "6,1,1,-;show_signal_msg: 12 callbacks suppressed",
            "6,1,1,-;segv[abc]: segfault at 0 ip 0 sp 0 error 4",
            "6,1,1,-;segv[0]: segfault at 0 ip 0 sp 0 error 4",
            "6,1,1,-;segv[99999999999]: segfault at 0 ip 0 sp 0 error 4",
            "6,1,1,-;traps: ill[5] something else ip:1 sp:2 error:0",
            "6,1,1,-;traps: ill[5]trap invalid opcode ip:1 sp:2 error:0",
            "6,1,1,-;segv[4]: segfault at 0 ip 00000000000000001 sp 0 error 4",  // 17 hex digits
            "6,1,1,-;segv[4]: segfault at 0 ip 0ABC sp 0 error 4",
        ] {
            #expect(KernelFaultRecord.parse(record) == nil, "\(record)")
        }
    }

    @Test func truncatedRecords_areIgnored() {
        for line in [Records.segfault, Records.invalidOpcode] {
            let message = line.split(separator: ";", maxSplits: 1)[1]
            // Cut anywhere before the registers end, or inside the mapping part: refused.
            let registersEnd = message.range(of: line.contains("traps") ? " error:0" : " error 6")!.upperBound
            var cut = message.startIndex
            while cut < message.endIndex {
                let truncated = String(line.prefix(line.count - message.count)) + message[..<cut]
                if cut < registersEnd || (cut > registersEnd && !message[..<cut].hasSuffix("]")) {
                    #expect(KernelFaultRecord.parse(truncated) == nil, "\(truncated)")
                }
                cut = message.index(after: cut)
            }
        }
    }

    @Test func mutatedRecords_neverTrapAndNeverInventAThread() {
        // A fixed-seed generator: the same mutations on every run.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        let alphabet = Array("0123456789abcdefABCDEF[](),;:+ -\\xsegfaultrapin\n\u{0}é")
        for original in [Records.segfault, Records.invalidOpcode, Records.divideError, Records.generalProtection] {
            for _ in 0..<2000 {
                var characters = Array(original)
                for _ in 0...next(4) {
                    let at = next(characters.count + 1)
                    switch next(3) {
                    case 0 where at < characters.count: characters.remove(at: at)
                    case 1 where at < characters.count: characters[at] = alphabet[next(alphabet.count)]
                    default: characters.insert(alphabet[next(alphabet.count)], at: at)
                    }
                }
                let record = String(characters)
                guard let report = KernelFaultRecord.parse(record) else { continue }
                #expect(record.contains("[\(report.threadID)]"), "\(record) gave thread \(report.threadID)")
            }
        }
    }

    @Test func namesCraftedToLookLikeASecondReport_areRefused() {
        // A user names their program or file so the line could be read as another thread's fault.
        let forgedComm = "6,1,1,-;traps: a[1] trap x[4412] trap invalid opcode ip:55c28e58a12d sp:7ffd9b85fcd0 error:0"
        #expect(KernelFaultRecord.parse(forgedComm) == nil)
        let forgedName = "6,1,1,-;evil[999]: segfault at 0 ip 0000000000401000 sp 0000000000000000 error 4 in x[1]: segfault at 0 ip 0000000000401000 sp 0 error 4 in y[0,401000+1000] likely on CPU 0 (core 0, socket 0)"
        #expect(KernelFaultRecord.parse(forgedName) == nil)
        let badTail = "6,1,1,-;process '/tmp/x[4411]: segfault at 0 ip 0000000000401000 sp 0 error 4' started with executable stack"
        #expect(KernelFaultRecord.parse(badTail) == nil)
    }
}

/// The reader against the real kernel log: needs root (kernel.dmesg_restrict) and a /dev/kmsg.
@Suite struct KernelFaultLogTests {
    private static func run(_ program: String, _ mode: String) throws -> Int32 {
        let process = try RunningProcess(program, [mode])
        _ = try process.nextLine()
        let deadline = Date().addingTimeInterval(10)
        while process.isAlive && Date() < deadline { usleep(10_000) }
        return process.pid
    }

    @Test func missingDevice_isReportedUnavailable_andGivesNoReports() {
        let log = KernelFaultLog(path: "/nonexistent/kmsg")
        guard case let .unavailable(reason) = log.availability else {
            Issue.record("opened a missing file")
            return
        }
        #expect(reason.contains("/nonexistent/kmsg"))
        #expect(log.reports().isEmpty)
    }

    @Test(.enabled(if: geteuid() == 0 && FileManager.default.fileExists(atPath: "/dev/kmsg") && KernelFaultLog.kernelReportsFaults))
    func realFaults_areReported_andASentSignalIsNot() throws {
        let log = KernelFaultLog()
        defer { log.stop() }
        #expect(log.availability == .reading)
        let fault = try FixtureBuilder().build("fault.c", flags: ["-O0", "-pthread"], as: "fault")
        let before = log.reports().last?.sequence ?? 0

        let segv = try Self.run(fault, "segv")
        let ill = try Self.run(fault, "ill")
        let threaded = try Self.run(fault, "thread-segv")
        let sent = try Self.run(fault, "raise-segv")
        let reports = log.reports().filter { $0.sequence > before && $0.command.hasPrefix("fault") }
        // The kernel may drop reports under its rate limit when other tests crash things too.
        if let report = reports.first(where: { $0.threadID == ThreadID(segv) }) {
            #expect(report.kind == "segfault")
            #expect(report.mapping?.name.hasPrefix("fault") == true)
        }
        if let report = reports.first(where: { $0.threadID == ThreadID(ill) }) { #expect(report.kind == "trap invalid opcode") }
        #expect(!reports.contains { $0.threadID == ThreadID(sent) || $0.processID == ProcessID(sent) }, "raise(SIGSEGV) is no fault")
        if let report = reports.first(where: { $0.threadID > ThreadID(threaded) && $0.threadID < ThreadID(sent) }) {
            #expect(report.processID == nil || report.processID == ProcessID(threaded), "a worker thread's report belongs to its process")
        }
        #expect(!reports.isEmpty, "no fault report at all: \(log.reports())")
    }
}
