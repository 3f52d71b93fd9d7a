import Artifact
import Foundation
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import Engine

/// Reading a live process's TLS layout from its dynamic linker's records (target_state: four
/// threads, thread-locals in the executable and in a library loaded at start-up).
extension LivePatchTests {
    /// target_state, started and ready, with its path, and the objects it maps.
    static func runningTargetState() throws -> (RunningProcess, String, ObjectCache, [LoadedObject]) {
        let program = try BindingFixtures.targetState()
        let process = try RunningProcess(program)
        do { _ = try process.waitForLine(timeout: 10) { $0.hasPrefix("ready") } } catch {
            process.stop()
            throw error
        }
        let pid = ProcessID(process.pid)
        let cache = ObjectCache()
        return (process, program, cache, LoadedObjects.of(pid: pid, mappings: try ProcFS.maps(of: pid), cache: cache))
    }

    @Test func threadLocalLayout_readsModuleIDsAndStaticBlocksFromTheLinkMaps() throws {
        let (process, program, cache, objects) = try Self.runningTargetState()
        defer { process.stop() }
        let memory = try ProcessMemory(pid: ProcessID(process.pid))
        let executable = try #require(objects.first { $0.path == program })
        let library = try #require(objects.first { $0.path.contains("target_state_lib") })
        let loader = try #require(objects.first { $0.path.contains("ld-linux") })

        // The executable is always module 1; libraries loaded at start-up follow, all in static TLS.
        let main = try ThreadLocalLayout.block(of: executable, objects: objects, cache: cache, memory: memory).get()
        let shared = try ThreadLocalLayout.block(of: library, objects: objects, cache: cache, memory: memory).get()
        #expect(main.moduleID == 1)
        #expect(shared.moduleID > 1)
        #expect(main.staticBlockOffset != nil && shared.staticBlockOffset != nil)
        #expect(main.staticBlockOffset != shared.staticBlockOffset)

        // An object without thread-locals is named as such.
        guard case let .failure(problem) = ThreadLocalLayout.block(of: loader, objects: objects, cache: cache, memory: memory) else {
            Issue.record("\(loader.path) has no PT_TLS, yet a block was found")
            return
        }
        #expect(problem.text.contains("has no thread-local storage (no PT_TLS segment)"), "\(problem.text)")
    }

    @Test func threadLocalLayout_findsTheSameDebugRecordThroughDTDebugAsThroughRDebug() throws {
        let (process, _, cache, objects) = try Self.runningTargetState()
        defer { process.stop() }
        let memory = try ProcessMemory(pid: ProcessID(process.pid))
        let loader = try #require(objects.first { $0.path.contains("ld-linux") })
        let exported = try #require(try cache.exports(of: loader)["_r_debug"]?.first)
        #expect(ThreadLocalLayout.debugFromDynamicSection(objects: objects, cache: cache, memory: memory)
                == loader.loadBias + exported.value)
    }
}
