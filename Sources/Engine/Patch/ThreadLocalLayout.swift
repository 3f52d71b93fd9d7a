import Artifact

/// Where a loaded object's thread-locals live in a process, read from the dynamic linker's own
/// records without running code: the object's `link_map` (found through `_r_debug.r_map`, matched by
/// its dynamic section's address) holds its TLS module id and, when its block is in static TLS,
/// that block's offset from the thread pointer. Those two fields are private to glibc; their
/// offsets are read from the descriptors libc publishes for libthread_db
/// (`_thread_db_link_map_l_tls_modid`, `_thread_db_link_map_l_tls_offset`).
enum ThreadLocalLayout {
    /// Public `struct link_map` fields (<link.h>): l_addr, l_name, l_ld, l_next (l_ld's 8 bytes
    /// on from l_ld).
    private static let linkMapDynamicOffset: UInt64 = 16
    /// `struct r_debug`: int r_version, then `struct link_map *r_map` at 8.
    private static let debugMapOffset: UInt64 = 8
    /// No honest namespace has more objects; a longer chain is refused.
    static let maximumObjects = 65_536

    /// An object's TLS module id and, when its block is in static TLS, the block's offset.
    typealias Block = (moduleID: UInt64, staticBlockOffset: UInt64?)

    /// The module id and static block offset of `object`'s thread-locals in the process.
    static func block(of object: LoadedObject, objects: [LoadedObject], cache: ObjectCache,
                      memory: borrowing ProcessMemory) -> Result<Block, SymbolProblem> {
        func problem(_ text: String) -> Result<Block, SymbolProblem> {
            .failure(SymbolProblem(text: "the thread-locals of \(object.path) cannot be located in this process: \(text)"))
        }
        guard let facts = try? cache.linkFacts(of: object) else { return problem("its file cannot be read") }
        guard facts.hasThreadLocalStorage else { return problem("it has no thread-local storage (no PT_TLS segment)") }
        guard let dynamic = facts.dynamicAddress else { return problem("it has no dynamic section, so no link_map names it") }

        var descriptors: [String: ObjectLinkFacts.FieldDescriptor]?
        var debug: UInt64?
        for candidate in objects {
            if descriptors == nil, let found = try? cache.linkFacts(of: candidate).threadDebugDescriptors,
               ObjectLinkFacts.threadDebugNames.allSatisfy({ found[$0] != nil }) {
                descriptors = found
            }
            if debug == nil, let symbol = (try? cache.exports(of: candidate))?["_r_debug"]?.first {
                debug = candidate.loadBias &+ symbol.value
            }
        }
        guard let descriptors, let modidField = descriptors[ObjectLinkFacts.threadDebugNames[0]],
              let offsetField = descriptors[ObjectLinkFacts.threadDebugNames[1]] else {
            return problem("no loaded object publishes glibc's \(ObjectLinkFacts.threadDebugNames.joined(separator: " and ")) (is the C library glibc?)")
        }
        for field in [modidField, offsetField] where field.count != 1 || (field.bits != 32 && field.bits != 64) {
            return problem("glibc describes a link_map TLS field as \(field.count) × \(field.bits) bits, not one 32- or 64-bit word")
        }
        guard let debug = debug ?? debugFromDynamicSection(objects: objects, cache: cache, memory: memory) else {
            return problem("no loaded object exports _r_debug and no dynamic section has DT_DEBUG set (the dynamic linker's list of objects)")
        }
        guard var node = memory.littleEndianWord(at: debug &+ debugMapOffset) else { return problem("_r_debug cannot be read") }
        let wanted = object.loadBias &+ dynamic
        // The list is the process's memory: its code may have made it loop, endless or point
        // nowhere. Each node is read once, and the walk ends at a node seen before or past
        // `maximumObjects`, with the reason.
        var visited: Set<UInt64> = []
        while node != 0 {
            guard visited.count < maximumObjects else {
                return problem("the dynamic linker's list of objects (_r_debug) is longer than \(maximumObjects) objects, which no dynamic linker makes")
            }
            guard visited.insert(node).inserted else {
                return problem("the dynamic linker's list of objects (_r_debug) loops back to 0x\(String(node, radix: 16)) after \(visited.count) objects, which no dynamic linker makes")
            }
            // l_ld and l_next are adjacent: one read of both.
            guard let fields = try? memory.read(at: node &+ linkMapDynamicOffset, count: 16) else {
                return problem("the dynamic linker's list of objects cannot be read at 0x\(String(node, radix: 16))")
            }
            let ld = fields.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
            let next = fields.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }.littleEndian
            if ld == wanted {
                guard let moduleID = memory.littleEndianWord(at: node &+ UInt64(modidField.offset), bytes: Int(modidField.bits / 8)),
                      let rawOffset = memory.littleEndianWord(at: node &+ UInt64(offsetField.offset), bytes: Int(offsetField.bits / 8)) else {
                    return problem("its link_map at 0x\(String(node, radix: 16)) cannot be read")
                }
                guard moduleID != 0 else { return problem("its link_map says it has no TLS module") }
                // glibc marks a block not (yet) in static TLS with NO_TLS_OFFSET (0) or
                // FORCED_DYNAMIC_TLS_OFFSET (-1) on architectures with the TCB at the thread pointer.
                let allOnes: UInt64 = offsetField.bits == 64 ? .max : UInt64(UInt32.max)
                let isStatic = rawOffset != 0 && rawOffset != allOnes
                return .success((moduleID, isStatic ? rawOffset : nil))
            }
            node = next
        }
        return problem("no link_map in _r_debug's list has its dynamic section at 0x\(String(wanted, radix: 16))")
    }

    /// The `r_debug` address the dynamic linker stored in the DT_DEBUG entry of the executable's
    /// dynamic section (read from the process: the file holds 0 there).
    static func debugFromDynamicSection(objects: [LoadedObject], cache: ObjectCache,
                                        memory: borrowing ProcessMemory) -> UInt64? {
        for object in objects {
            guard let dynamic = (try? cache.linkFacts(of: object))?.dynamicAddress else { continue }
            let start = object.loadBias &+ dynamic
            for index in 0..<UInt64(1024) {
                guard let tag = memory.littleEndianWord(at: start &+ index * 16), tag != 0 else { break }
                if Int64(bitPattern: tag) == ELFDynamicEntry.DT_DEBUG {
                    if let value = memory.littleEndianWord(at: start &+ index * 16 &+ 8), value != 0 { return value }
                    break
                }
            }
        }
        return nil
    }
}
