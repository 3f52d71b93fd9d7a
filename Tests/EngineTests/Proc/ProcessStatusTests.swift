import Foundation
import LinuxSystem
import Testing
@testable import Engine

private let sample = """
    Name:\tmy worker
    Umask:\t0022
    State:\tS (sleeping)
    Tgid:\t4242
    Ngid:\t0
    Pid:\t4242
    PPid:\t1
    TracerPid:\t917
    Uid:\t1000\t0\t1001\t1002
    Gid:\t1000\t1000\t1000\t1000
    Threads:\t7
    SigPnd:\t0000000000000000
    SigCgt:\t0000000180004a02
    NoNewPrivs:\t1
    Seccomp:\t2
    Seccomp_filters:\t3
    Speculation_Store_Bypass:\tthread vulnerable

    """

@Test func status_whenAllFieldsPresent_readsThem() throws {
    let s = try ProcessStatus.parse(Array(sample.utf8), path: "/proc/4242/status")
    #expect(s.name == "my worker")
    #expect(s.state == "S")
    #expect(s.tracer == ThreadID(917))
    #expect(s.seccompMode == 2 && s.seccompFilterCount == 3)
    #expect(s.threadCount == 7)
}

@Test func status_whenAllFieldsPresent_readsTheFourUserIDsInKernelOrder() throws {
    let s = try ProcessStatus.parse(Array(sample.utf8), path: "/proc/4242/status")
    #expect(s.userIDs == ProcessStatus.UserIDs(real: 1000, effective: 0, saved: 1001, fileSystem: 1002))
    #expect(s.userIDs.description == "real 1000, effective 0, saved 1001, fs 1002")
}

@Test func status_whenReadForAThread_namesItsProcessFromTgid() throws {
    let text = sample.replacingOccurrences(of: "Pid:\t4242", with: "Pid:\t4250")
    let s = try ProcessStatus.parse(Array(text.utf8), path: "/proc/4250/status")
    #expect(s.processID == ProcessID(4242))
}

@Test func status_whenSigCgtPresent_readsTheCaughtSignalMask() throws {
    let s = try ProcessStatus.parse(Array(sample.utf8), path: "p")
    #expect(s.caughtSignals == 0x1_8000_4a02)
    #expect(s.caughtSignals.map { $0 & (1 << (UInt64(SIGUSR1) - 1)) != 0 } == true)
    let withoutMask = sample.split(separator: "\n").filter { !$0.hasPrefix("SigCgt") }.joined(separator: "\n")
    #expect(try ProcessStatus.parse(Array(withoutMask.utf8), path: "p").caughtSignals == nil)
}

@Test(arguments: [("Uid:\t0\t0\t0\n", "Uid: has no fs uid"), ("Uid:\t0\t0\tx\t0\n", "Uid: has no saved uid"),
                  ("Uid:\n", "Uid: has no real uid")])
func status_whenUidLineLacksAnID_throwsMalformedNamingIt(line: String, reason: String) {
    let text = sample.replacingOccurrences(of: "Uid:\t1000\t0\t1001\t1002\n", with: line)
    #expect(throws: EngineError.malformedProcFile(path: "p", reason: reason)) {
        try ProcessStatus.parse(Array(text.utf8), path: "p")
    }
}

@Test func status_whenTgidLineMissing_throwsMalformed() {
    let text = sample.split(separator: "\n").filter { !$0.hasPrefix("Tgid") }.joined(separator: "\n")
    #expect(throws: EngineError.malformedProcFile(path: "p", reason: "no Tgid: line")) {
        try ProcessStatus.parse(Array(text.utf8), path: "p")
    }
}

@Test func status_whenKernelHasNoSeccompLines_readsModeZeroAndNoCount() throws {
    let text = sample.split(separator: "\n").filter { !$0.hasPrefix("Seccomp") }.joined(separator: "\n")
    let s = try ProcessStatus.parse(Array(text.utf8), path: "p")
    #expect(s.seccompMode == 0 && s.seccompFilterCount == nil)
}

@Test func status_whenThreadsLineMissing_throwsMalformed() {
    let text = sample.split(separator: "\n").filter { !$0.hasPrefix("Threads") }.joined(separator: "\n")
    #expect(throws: EngineError.malformedProcFile(path: "p", reason: "no Threads: line")) {
        try ProcessStatus.parse(Array(text.utf8), path: "p")
    }
}

@Test func status_whenNumberIsGarbage_throwsMalformed() {
    let text = sample.replacingOccurrences(of: "TracerPid:\t917", with: "TracerPid:\tx")
    #expect(throws: EngineError.malformedProcFile(path: "p", reason: "TracerPid: is not a pid")) {
        try ProcessStatus.parse(Array(text.utf8), path: "p")
    }
}

@Test func status_whenTruncatedAnywhere_neverTraps() {
    let bytes = Array(sample.utf8)
    for length in 0..<bytes.count { _ = try? ProcessStatus.parse(Array(bytes[0..<length]), path: "p") }
}

@Test func stat_whenCommandHasSpacesAndParentheses_findsFieldsAfterLastParenthesis() throws {
    let text = "4242 (a) b (c)) R 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 7 0 987654321 1000 100 18446744073709551615\n"
    let stat = try ProcessStatParser.parse(Array(text.utf8), path: "p")
    #expect(stat.state == "R")
    #expect(stat.parent == ProcessID(1))
    #expect(stat.threads == 7)
    #expect(stat.startTime == 987654321)
}

@Test(arguments: ["", "4242 (x\n", "4242 (x) S 1 2 3\n", "4242 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 abc\n",
                      "4242 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 many 0 5\n"])
func stat_whenMalformed_throwsMalformed(text: String) {
    #expect {
        try ProcessStatParser.parse(Array(text.utf8), path: "p")
    } throws: { error in
        if case .malformedProcFile = error as? EngineError { return true }
        return false
    }
}
