import Foundation
import Glibc
@testable import LinuxSystem
import Testing

@Suite struct SystemCallTests {
    @Test func aCallInterruptedByARealSignalIsRetriedAndItsResultReturned() throws {
        // A handler without SA_RESTART, so the kernel ends the blocked read(2) with EINTR.
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        var previous = sigaction()
        #expect(sigaction(SIGUSR1, &action, &previous) == 0)
        defer { sigaction(SIGUSR1, &previous, nil) }

        let (readEnd, writeEnd) = try Socket.unixStreamPair(nonBlocking: false, subject: "a test pair")
        defer { Descriptor.close(readEnd); Descriptor.close(writeEnd) }
        let attempts = Shared(0)
        let interrupted = Shared(false)
        let thread = Shared<pthread_t?>(nil)
        let outcome = Shared<Result<Int, SystemError>?>(nil)
        try Threads.startDetached {
            // The test runner's threads may block signals; this one must take SIGUSR1.
            var usr1 = sigset_t()
            sigemptyset(&usr1)
            sigaddset(&usr1, SIGUSR1)
            pthread_sigmask(SIG_UNBLOCK, &usr1, nil)
            thread.update { $0 = pthread_self() }
            outcome.update { $0 = Result { () throws(SystemError) in
                try SystemCall.run("read", "a test pair") { () -> Int in
                    attempts.update { $0 += 1 }
                    var byte: UInt8 = 0
                    let count = Glibc.read(readEnd, &byte, 1)
                    if count == -1 && errno == EINTR { interrupted.update { $0 = true } }
                    return count
                }
            } }
        }
        #expect(eventually { attempts.value >= 1 })
        // The signal may come before the thread blocks; send it until the call was retried.
        let target = try #require(thread.value)
        #expect(eventually {
            pthread_kill(target, SIGUSR1)
            return attempts.value >= 2
        })
        var byte: UInt8 = 7
        #expect(Glibc.write(writeEnd, &byte, 1) == 1)
        #expect(eventually { outcome.value != nil })
        #expect(try outcome.value?.get() == 1)
        #expect(interrupted.value)
    }

    @Test func aFailedCallBecomesASystemErrorNamingTheCallTheSubjectAndTheErrno() {
        #expect(throws: SystemError(call: "open", errno: ENOENT, subject: "/nonexistent/linuxsystem-test")) {
            try Files.read("/nonexistent/linuxsystem-test")
        }
    }

    @Test func errnoIsWordedOneWay() {
        let error = SystemError(call: "open", errno: ENOENT, subject: "/etc/missing")
        #expect(error.description == "open failed for /etc/missing: ENOENT (No such file or directory)")
        #expect(SystemError.errnoText(EACCES) == "EACCES (Permission denied)")
        #expect(SystemError.errnoName(ECONNREFUSED) == "ECONNREFUSED")
        #expect(SystemError.errnoText(4000) == "errno 4000 (Unknown error 4000)")
    }

    @Test func anErrorThatWrapsAGoneProcessSaysSo() {
        struct Wrapper: SystemErrorCarrying { var systemError: SystemError? }
        #expect(Wrapper(systemError: SystemError(call: "ptrace", errno: ESRCH, subject: "1")).isProcessGone)
        #expect(!Wrapper(systemError: SystemError(call: "open", errno: EACCES, subject: "x")).isProcessGone)
        #expect(Wrapper(systemError: nil).underlyingSystemError == nil)
    }
}
