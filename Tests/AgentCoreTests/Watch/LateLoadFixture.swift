import Foundation
import Glibc
import HotpatchFixtures

/// A shared library and a program that `dlopen`s it only when told to (SIGUSR1), long after it
/// started: the case of a library mapped after the hotpatch is in force. Built into a test's own
/// directory, the library with a build-id of the caller's choosing.
struct LateLoadFixture {
    /// The library: `late_value()` returns 1.
    let library: String
    /// The program: `loader LIBRARY` prints "ready", waits for SIGUSR1, then loads LIBRARY and prints
    /// `late_value=N at_us=T` whenever the value changes (T: microseconds since just before the
    /// dlopen call), checking every millisecond.
    let loader: String

    /// Builds both into `directory`, the library with build-id `buildID` (hex) and `libraryFlags`
    /// added to its compiler flags (`-Wl,-z,norelro`, say).
    init(in directory: String, buildID: String, libraryFlags: [String] = []) throws {
        library = try FixtureBuilder.compile(text: Self.librarySource, to: directory + "/liblate.so",
                                             flags: ["-O0", "-fno-inline", "-shared", "-fPIC", "-Wl,--build-id=0x" + buildID] + libraryFlags)
        loader = try FixtureBuilder.compile(text: Self.loaderSource, to: directory + "/late-loader", flags: ["-O1", "-ldl"])
    }

    /// A hotpatch for the library: `late_value_fixed()` returns 2.
    static func patchObject(in directory: String) throws -> String {
        try FixtureBuilder.compile(text: "int late_value_fixed(void) { return 2; }\n", to: directory + "/late-patch.so",
                                   flags: ["-O2", "-shared", "-fPIC"])
    }

    /// A program linked against the library (found through its run path): it prints
    /// `late_value=N at_us=T` whenever the value changes (T: microseconds since `main` began).
    func linkedProgram(in directory: String) throws -> String {
        let libraryDirectory = (library as NSString).deletingLastPathComponent
        return try FixtureBuilder.compile(text: Self.linkedSource, to: directory + "/late-linked",
                                          flags: ["-O1", "-Wl,--no-as-needed", library, "-Wl,-rpath," + libraryDirectory])
    }

    /// Starts the loader on `library` and waits until it is ready to be told to load it.
    static func start(_ loader: String, loading library: String) throws -> RunningProcess {
        let process = try RunningProcess(loader, [library])
        _ = try process.line(timeout: 5) { $0 == "ready" }
        return process
    }

    static let librarySource = """
        int late_value(void) { return 1; }
        """

    /// What both programs share: the clock, and the loop that reports `late_value()`'s changes.
    static let reportingSource = """
        #include <stdio.h>
        #include <time.h>
        #include <unistd.h>

        static long microseconds(void) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            return now.tv_sec * 1000000L + now.tv_nsec / 1000;
        }

        static void report_forever(int (*value)(void), long start) {
            int last = -1;
            for (;;) {
                int now = value();
                if (now != last) {
                    printf("late_value=%d at_us=%ld\\n", now, microseconds() - start);
                    fflush(stdout);
                    last = now;
                }
                usleep(1000);
            }
        }

        """

    static let loaderSource = reportingSource + """
        #include <dlfcn.h>
        #include <signal.h>

        int main(int argc, char **argv) {
            if (argc != 2) return 2;
            sigset_t usr1;
            sigemptyset(&usr1);
            sigaddset(&usr1, SIGUSR1);
            sigprocmask(SIG_BLOCK, &usr1, NULL);
            printf("ready\\n");
            fflush(stdout);
            int signal;
            sigwait(&usr1, &signal);
            long start = microseconds();
            void *handle = dlopen(argv[1], RTLD_NOW);
            if (!handle) {
                printf("dlopen failed: %s\\n", dlerror());
                return 1;
            }
            report_forever((int (*)(void))dlsym(handle, "late_value"), start);
        }
        """

    static let linkedSource = reportingSource + """
        int late_value(void);

        int main(void) {
            report_forever(late_value, microseconds());
        }
        """
}

extension RunningProcess {
    /// Waits for the line saying `late_value()` returns `value`, and returns when (microseconds
    /// after the loader's dlopen call, or the linked program's `main`, began).
    func lateValue(_ value: Int, timeout: Double) throws -> Int {
        let line = try waitForLine(timeout: timeout) { $0.hasPrefix("late_value=\(value) ") }
        guard let field = line.split(separator: " ").last, field.hasPrefix("at_us="), let at = Int(field.dropFirst(6)) else {
            throw FixtureError.setUp("unexpected line from the loader: \(line)")
        }
        return at
    }
}
