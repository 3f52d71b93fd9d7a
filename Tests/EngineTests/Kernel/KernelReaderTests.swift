@testable import Artifact
import Foundation
import LinuxSystem
import Testing
@testable import Engine

/// Parsing the kernel's own files: a tree written by the test stands in for `/sys` and `/proc`
/// (this tests the parsing only; the real kernel's behaviour is proven by the qemu harness), and
/// this machine's real files where it has them.
@Suite struct KernelReaderTests {
    /// A fake root with the files a Debian 6.1 kernel with live patch support shows.
    final class KernelTree {
        let directory: TemporaryDirectory
        var paths: KernelPaths { KernelPaths(root: directory.path) }

        init() throws { directory = try TemporaryDirectory(prefix: "kernel-tree") }

        func write(_ relative: String, _ text: String) throws {
            let path = directory.file(relative)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }

        func write(_ relative: String, bytes: [UInt8]) throws {
            try write(relative, "")
            try Data(bytes).write(to: URL(fileURLWithPath: directory.file(relative)))
        }

        /// A kernel that can take live patches, with `notes` as /sys/kernel/notes.
        static func debian(notes: [UInt8]) throws -> KernelTree {
            let tree = try KernelTree()
            try tree.write("proc/sys/kernel/osrelease", "6.1.0-57-amd64\n")
            try tree.write("sys/kernel/notes", bytes: notes)
            try tree.write("proc/modules", "")
            try tree.write("proc/sys/kernel/modules_disabled", "0\n")
            try tree.write("sys/kernel/security/lockdown", "[none] integrity confidentiality\n")
            try tree.write("sys/module/module/parameters/sig_enforce", "N\n")
            try tree.write("proc/sys/kernel/tainted", "0\n")
            try FileManager.default.createDirectory(atPath: tree.directory.file("sys/kernel/livepatch"), withIntermediateDirectories: true)
            return tree
        }
    }

    static let buildID: [UInt8] = (0..<20).map { UInt8(0xa0 + $0) }

    /// `/sys/kernel/notes` as the kernel lays it out: a Xen note, the GNU build-id, a Linux note.
    static var notes: [UInt8] {
        func word(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        func note(_ name: String, _ type: UInt32, _ descriptor: [UInt8]) -> [UInt8] {
            let nameBytes = Array(name.utf8) + [0]
            func pad(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4) }
            return word(UInt32(nameBytes.count)) + word(UInt32(descriptor.count)) + word(type) + pad(nameBytes) + pad(descriptor)
        }
        return note("Xen", 6, Array("linux".utf8)) + note("GNU", 3, buildID) + note("Linux", 0x100, [1])
    }

    @Test func read_ofLivePatchCapableKernel_findsReleaseBuildIDAndNoReason() throws {
        let tree = try KernelTree.debian(notes: Self.notes)
        let kernel = try RunningKernel.read(tree.paths)
        #expect(kernel.release == "6.1.0-57-amd64")
        #expect(kernel.buildID == BuildID(bytes: Self.buildID))
        #expect(kernel.unavailability(moduleIsSigned: false) == nil)
    }

    @Test func read_namesEachReasonModulesCannotLoad() throws {
        let tree = try KernelTree.debian(notes: Self.notes)
        try tree.write("sys/kernel/security/lockdown", "none [integrity] confidentiality\n")
        #expect(try RunningKernel.read(tree.paths).unavailability(moduleIsSigned: false) == .lockdown(mode: "integrity"))
        try tree.write("sys/kernel/security/lockdown", "none integrity [confidentiality]\n")
        #expect(try RunningKernel.read(tree.paths).unavailability(moduleIsSigned: false) == .lockdown(mode: "confidentiality"))
        try tree.write("sys/kernel/security/lockdown", "[none] integrity confidentiality\n")
        try tree.write("sys/module/module/parameters/sig_enforce", "Y\n")
        #expect(try RunningKernel.read(tree.paths).unavailability(moduleIsSigned: false) == .signatureEnforced)
        try tree.write("proc/sys/kernel/modules_disabled", "1\n")
        #expect(try RunningKernel.read(tree.paths).unavailability == .moduleLoadingDisabled)
        try FileManager.default.removeItem(atPath: tree.directory.file("sys/kernel/livepatch"))
        #expect(try RunningKernel.read(tree.paths).unavailability == .noLivePatchSupport)
        try FileManager.default.removeItem(atPath: tree.directory.file("proc/modules"))
        #expect(try RunningKernel.read(tree.paths).unavailability == .noModuleSupport)
    }

    @Test func read_whenNotesAreTruncated_refusesNamingTheFile() throws {
        // Cut inside the GNU note's descriptor (the Xen note takes 24 bytes, the GNU header and name 16).
        let tree = try KernelTree.debian(notes: Array(Self.notes.prefix(50)))
        #expect {
            try RunningKernel.read(tree.paths)
        } throws: { error in
            guard case let EngineError.malformedProcFile(path, _) = error else { return false }
            return path.hasSuffix("sys/kernel/notes")
        }
    }

    @Test func read_ofThisMachine_findsItsReleaseAndBuildIDAndNoModuleSupport() throws {
        let kernel = try RunningKernel.read()
        #expect(kernel.release == (try KernelModules.release()))
        let notes = Array(try Data(contentsOf: URL(fileURLWithPath: "/sys/kernel/notes")))
        let id = try #require(kernel.buildID)
        #expect(notes.indices.contains { notes[$0...].starts(with: Array("GNU\0".utf8) + id.bytes) })
        // This machine's kernel has no loadable modules: the named reason, not a failure.
        if !FileManager.default.fileExists(atPath: "/proc/modules") {
            #expect(kernel.unavailability == .noModuleSupport)
        }
    }

    @Test func snapshot_readsEachLivePatchAndTheLoadedModules() throws {
        let tree = try KernelTree.debian(notes: Self.notes)
        try tree.write("sys/kernel/livepatch/lp2/enabled", "1\n")
        try tree.write("sys/kernel/livepatch/lp2/transition", "1\n")
        try tree.write("sys/kernel/livepatch/lp1/enabled", "1\n")
        try tree.write("sys/kernel/livepatch/lp1/transition", "0\n")
        try tree.write("proc/modules", "lp2 16384 1 - Live 0x0000000000000000 (OEK)\nlp1 16384 0 - Live 0x0000000000000000 (OEK)\nold 4096 0 - Live 0x0 (OEK)\n")
        let snapshot = try LivePatchSnapshot.read(tree.paths)
        #expect(snapshot.patches == [LivePatchState(name: "lp1", enabled: true, inTransition: false),
                                     LivePatchState(name: "lp2", enabled: true, inTransition: true)])
        #expect(snapshot.loadedModules == ["lp1", "lp2", "old"])
        #expect(snapshot.transition?.name == "lp2")
        #expect(snapshot.patch("lp1")?.isInForce == true)
    }

    @Test func snapshot_whenAFlagIsNotZeroOrOne_refusesNamingTheFile() throws {
        let tree = try KernelTree.debian(notes: Self.notes)
        try tree.write("sys/kernel/livepatch/lp1/enabled", "yes\n")
        try tree.write("sys/kernel/livepatch/lp1/transition", "0\n")
        #expect(throws: EngineError.malformedProcFile(path: tree.paths.livePatch("lp1") + "/enabled", reason: "'yes' is not 0 or 1")) {
            try LivePatchSnapshot.read(tree.paths)
        }
    }

    @Test func blockingTasks_areTheThreadsNotYetInTheTargetState() throws {
        let tree = try KernelTree.debian(notes: Self.notes)
        for (pid, tid, state, comm) in [(1, 1, "1", "init"), (300, 300, "0", "holder"), (300, 301, "1", "holder"),
                                        (400, 400, "-1", "idle"), (500, 502, "0", "kworker/0:1")] {
            try tree.write("proc/\(pid)/task/\(tid)/patch_state", state + "\n")
            try tree.write("proc/\(pid)/task/\(tid)/comm", comm + "\n")
        }
        let applying = LivePatchState(name: "lp1", enabled: true, inTransition: true)
        #expect(try LivePatchSnapshot.blockingTasks(of: applying, paths: tree.paths)
                == [BlockingTask(pid: ProcessID(300), tid: ThreadID(300), command: "holder"),
                    BlockingTask(pid: ProcessID(500), tid: ThreadID(502), command: "kworker/0:1")])
        // Reverting heads for 0: now the patched threads are the ones left behind.
        let reverting = LivePatchState(name: "lp1", enabled: false, inTransition: true)
        #expect(try LivePatchSnapshot.blockingTasks(of: reverting, paths: tree.paths).map(\.tid) == [ThreadID(1), ThreadID(301)])
    }

    @Test func taint_isReadAsAMaskAndNamedByLetter() throws {
        let tree = try KernelTree.debian(notes: Self.notes)
        try tree.write("proc/sys/kernel/tainted", "45056\n")
        #expect(try RunningKernel.taint(tree.paths) == KernelTaint(mask: 45056))
        #expect(try RunningKernel.oopsCount(tree.paths) == nil)
        try tree.write("sys/kernel/oops_count", "2\n")
        #expect(try KernelHealth.read(tree.paths) == KernelHealth(taint: KernelTaint(mask: 45056), oopsCount: 2))
    }

    @Test func apply_ofAFileThatIsNoModule_isRefusedByTheKernelWithItsReason() throws {
        // This machine's kernel has no module support: finit_module fails with ENOSYS; a kernel
        // with support refuses the bytes (ENOEXEC). Real loads are the qemu harness's to check.
        let directory = try TemporaryDirectory(prefix: "kernel-apply")
        let path = directory.file("lp.ko")
        try Data("not a module".utf8).write(to: URL(fileURLWithPath: path))
        let fix = KernelFix(patch: KernelLivePatch(kernelRelease: "x", buildID: BuildID(bytes: [1]), livepatchName: "lp",
                                                   modulePath: path, moduleSHA256: ""),
                            release: FixRelease(id: "hp1", level: 1))
        let able = RunningKernel(release: "x", buildID: BuildID(bytes: [1]), modulesSupported: true, livePatchSupported: true,
                                 modulesDisabled: false, lockdown: nil, signatureEnforced: false)
        let outcome = KernelPatcher(stallSeconds: 1).apply(fix, kernel: able)
        if FileManager.default.fileExists(atPath: "/proc/modules") {
            guard case .failed(fix, .loadRefused) = outcome else { Issue.record("\(outcome)"); return }
        } else {
            #expect(outcome == .failed(fix, .loadRefused(errno: ENOSYS)))
            #expect(KernelFailure.loadRefused(errno: ENOSYS).description.contains("no module support"))
        }
    }
}
