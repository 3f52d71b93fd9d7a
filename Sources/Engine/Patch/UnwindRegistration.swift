import Architecture
import Artifact
import Glibc

/// Registers a patch image's unwind tables (its `.eh_frame`) with the process's libgcc_s as
/// `__register_frame_info` would, by writing the unwinder's list from outside, so that no code of
/// the process runs. Without it, a C++ exception or a thread cancellation unwinding through a
/// replacement function finds no table for its frame, and the process aborts (`terminate called…`).
///
/// What it takes is decided before the load (`prepare`); the writes are made while every thread
/// is held and only when the list's lock is free: then no thread is inside the unwinder, and what
/// a thread does next sees the list whole. The record lives in the
/// slack after the image's last writable segment (private to the process); its table word tells a
/// later look that the image is registered already.
struct UnwindRegistration {
    /// The image's table and record, as link-time offsets in the patch object.
    let table: UInt64
    let recordOffset: UInt64
    /// The libgcc_s the process maps, and where its list lives.
    let unwinder: LoadedObject
    let layout: UnwinderRegistryLayout

    /// What registering `patch`'s tables takes in a process with `objects` mapped, decided before
    /// any thread is held; nil when there is nothing to do (no table, no libgcc_s).
    static func prepare(patch: PatchObject, objects: [LoadedObject], cache: ObjectCache) throws(LoadFailure) -> UnwindRegistration? {
        // One unwinder per process in practice; should a second libgcc_s be mapped, the first one
        // (in address order) is the one the process's own code was bound to at start-up.
        guard let unwinder = objects.first(where: { isUnwinderLibrary($0.path) }),
              let table = try tableAddress(in: patch) else { return nil }
        guard let slot = recordOffset(in: patch) else {
            throw .unpatchable(.cannotMapPatchObject(detail: "\(patch.elf.path): no room after its last writable segment for the \(UnwinderRegistryLayout.recordSize)-byte record that registers its unwind tables with libgcc_s"))
        }
        guard let layout = cache.unwinderLayout(of: unwinder) else {
            throw .unpatchable(.cannotMapPatchObject(detail: "\(unwinder.path): its __register_frame_info_bases is not one the agent recognises, so the patch's unwind tables cannot be registered (a C++ exception or cancellation through a replaced function would abort the process)"))
        }
        return UnwindRegistration(table: table, recordOffset: slot, unwinder: unwinder, layout: layout)
    }

    /// Whether `path` names a libgcc_s (its last component starts with `libgcc_s.so`). Compared
    /// as bytes: it runs for every object of every process a first apply loads into, where
    /// splitting the path as a String cost some 7 µs a process (docs/PERFORMANCE.md, run 18).
    static func isUnwinderLibrary(_ path: String) -> Bool {
        let prefix = unwinderPrefix
        return path.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            let name = (bytes.lastIndex(of: UInt8(ascii: "/")).map { $0 + 1 }) ?? 0
            guard bytes.count - name >= prefix.count else { return false }
            return prefix.withUnsafeBufferPointer { memcmp(bytes.baseAddress! + name, $0.baseAddress!, prefix.count) == 0 }
        } ?? ((path.split(separator: "/").last ?? "").hasPrefix("libgcc_s.so"))
    }
    private static let unwinderPrefix = Array("libgcc_s.so".utf8)

    /// The writes that register the image mapped at `base`, in order: the record, the list head,
    /// the unwinder's "any registered" flag; none when the record is in place already. Read with
    /// every thread held, so the lock's state holds until they are written.
    func writes(base: UInt64, memory: borrowing ProcessMemory) throws(LoadFailure) -> [(address: UInt64, bytes: [UInt8])] {
        let record = base &+ recordOffset
        let bias = unwinder.loadBias
        do {
            // Past the segment's memory the page may hold file bytes, not zeros: only our own
            // table's address there means the record is in place.
            let registered = try memory.read(at: record + UInt64(UnwinderRegistryLayout.tableOffset), count: 8)
            if registered.withUnsafeBytes({ $0.loadUnaligned(as: UInt64.self) }).littleEndian == base &+ table { return [] }
            let lock = try memory.read(at: bias &+ layout.lock, count: 4)
            if lock != [0, 0, 0, 0] {
                throw LoadFailure.busy("a thread holds libgcc_s's unwinder lock (it is unwinding)")
            }
            let head = try memory.read(at: bias &+ layout.listHead, count: 8)
            let next = head.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
            // libgcc_s raises the flag with every table it lists, and until then its unwinder
            // looks at neither list. A list without the flag was written by the process itself
            // (its memory is its own): raising the flag would wake it, and the process's next
            // exception would follow what the process put there. Refused, never followed.
            let anyRegistered = try memory.read(at: bias &+ layout.anyRegisteredFlag, count: 4)
            if next != 0, anyRegistered == [0, 0, 0, 0] {
                throw LoadFailure.unpatchable(.cannotMapPatchObject(detail: "\(unwinder.path): its list of registered unwind tables starts at 0x\(String(next, radix: 16)) although no table was ever registered (its flag is 0): the process's memory is not what libgcc_s wrote, so the patch's unwind tables cannot be added to it"))
            }
            var address: [UInt8] = []
            withUnsafeBytes(of: record.littleEndian) { address.append(contentsOf: $0) }
            return [(record, layout.record(table: base &+ table, next: next)),
                    (bias &+ layout.listHead, address),
                    (bias &+ layout.anyRegisteredFlag, [1, 0, 0, 0])]
        } catch let failure as LoadFailure {
            throw failure
        } catch {
            throw .unpatchable(.systemFailure(detail: "reading libgcc_s's unwinder list in process \(memory.pid): \(error)"))
        }
    }

    /// The link-time address of the patch object's `.eh_frame`, nil when it has none; refused when
    /// it lacks the zero word that ends the table (the unwinder would read past it).
    static func tableAddress(in patch: PatchObject) throws(LoadFailure) -> UInt64? {
        guard let section = patch.elf.section(named: ".eh_frame"), section.size > 4 else { return nil }
        let end = try? patch.elf.bytes(atVirtualAddress: section.address + section.size - 4, count: 4)
        guard end == [0, 0, 0, 0] else {
            throw .unpatchable(.patchObjectRejected(detail: "\(patch.elf.path): its .eh_frame does not end with the zero terminator (link it with cc -shared, which adds it)"))
        }
        return section.address
    }

    /// Where the record goes: 8-aligned, after the memory of the last writable segment that has
    /// room before the end of its last page.
    static func recordOffset(in patch: PatchObject) -> UInt64? {
        for segment in patch.segments.reversed() where segment.flags.contains(.writable) {
            let start = (segment.memoryEnd + 7) & ~7
            if segment.mapOffset + segment.mapLength >= start + UInt64(UnwinderRegistryLayout.recordSize) { return start }
        }
        return nil
    }
}
