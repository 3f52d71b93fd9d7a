import Architecture
import Artifact
import Glibc
import LinuxSystem
import Synchronization

/// One ELF object (executable or shared library) as a process has it mapped.
public struct LoadedObject: Sendable, Hashable {
    /// Its path as /proc/PID/maps shows it (without " (deleted)").
    public var path: String
    /// The file was deleted or replaced on disk after the process mapped it.
    public var isDeleted: Bool
    /// Its GNU build-id, if it has one.
    public var buildID: BuildID?
    /// Runtime address minus link-time address: an offset from the object's load base becomes an
    /// address by adding this.
    public var loadBias: UInt64
    /// Its mappings, in address order.
    public var mappings: [MemoryMapping]
    /// A path that opens the very file mapped, even if deleted or replaced (/proc/PID/map_files/…).
    public var readablePath: String

    /// The file's identity on disk.
    var fileKey: FileKey { FileKey(mappings[0]) }

    /// The mapping that holds `address`, if any.
    func mapping(containing address: UInt64) -> MemoryMapping? {
        mappings.first { $0.start <= address && address < $0.end }
    }
}

/// A file's identity: device and inode, as /proc/PID/maps reports them.
struct FileKey: Hashable, Sendable {
    let major: UInt32
    let minor: UInt32
    let inode: UInt64

    init(_ mapping: MemoryMapping) {
        major = mapping.deviceMajor
        minor = mapping.deviceMinor
        inode = mapping.inode
    }

    init(_ file: StartFile) {
        major = file.deviceMajor
        minor = file.deviceMinor
        inode = file.inode
    }
}

/// A parsed patch object and the file (device, inode) it was parsed from: a process must open
/// that very file for the image to be what the loader relocates.
struct PatchFile: Sendable {
    let object: PatchObject
    let file: StartFile
    /// `PatchLoader.farAreaBytes(of:path:)` of `object` at the path it was read from.
    let farAreaBytes: UInt64
}

/// Facts read once per file (device + inode) and shared by every process that maps it: build-id and
/// load layout, and the exported dynamic symbols when symbol resolution needs them.
public final class ObjectCache: Sendable {
    // Read by every worker for nearly every process of a pass, and written once per file: behind
    // reader-writer locks (see `ReadMostly`), not mutexes.
    private let identities = ReadMostly<[FileKey: Fact<ELFIdentity?>]>([:])
    private let exports = ReadMostly<[FileKey: Fact<[String: [ELFSymbol]]>]>([:])
    private let linkFacts = ReadMostly<[FileKey: Fact<ObjectLinkFacts>]>([:])
    private let syscallOffsets = ReadMostly<[FileKey: Fact<UInt64?>]>([:])
    private let unwinderLayouts = ReadMostly<[FileKey: Fact<UnwinderRegistryLayout?>]>([:])
    private let patchObjects = ReadMostly<[String: (stamp: [Int], file: PatchFile)]>([:])
    /// Where the vDSO's first system call instruction lay in the last process whose vDSO was
    /// searched (`noOffset`: none yet): the vDSO is the kernel's, the same code in every native process.
    private let vdsoSystemCall = Atomic<UInt64>(ObjectCache.noOffset)
    private static let noOffset = UInt64.max

    /// The original bytes of redirected functions by their SHA-256 (hex, as a redirection gives
    /// it), each read once from a mapped file and found to have that digest: whichever process
    /// or file they came from, bytes with that digest are those bytes. A revert, or a new level
    /// over an old one, finds a jump in each process's memory and needs them for every process.
    private let originals = ReadMostly<[String: [UInt8]]>([:])
    /// How many originals are kept, and the longest kept: a long function is read from its file each time.
    static let originalsKept = 256, longestOriginalKept = 4096

    /// Set once the kernel refused a PROCMAP_QUERY (before Linux 6.11): spare code is then not used.
    private let mappingQueriesRefused = Atomic<Bool>(false)

    /// Whether the kernel may answer PROCMAP_QUERY (none was refused yet).
    var answersMappingQueries: Bool { !mappingQueriesRefused.load(ordering: .relaxed) }

    /// Remembers that the kernel cannot answer PROCMAP_QUERY.
    func noteMappingQueriesRefused() { mappingQueriesRefused.store(true, ordering: .relaxed) }

    /// The offset of a system call instruction in the vDSO, last found (see `noteVDSOSystemCall`).
    var vdsoSystemCallOffset: UInt64? {
        let offset = vdsoSystemCall.load(ordering: .relaxed)
        return offset == ObjectCache.noOffset ? nil : offset
    }

    /// Remembers the offset of the vDSO's first system call instruction.
    func noteVDSOSystemCall(at offset: UInt64) { vdsoSystemCall.store(offset, ordering: .relaxed) }

    /// The bytes whose SHA-256 is `digest`, if noted before.
    func originalBytes(digest: String) -> [UInt8]? { originals.read { $0[digest] } }

    /// Remembers `bytes`, whose SHA-256 the caller found to be `digest`, unless they are longer
    /// than `longestOriginalKept` or `originalsKept` are kept already.
    func noteOriginalBytes(_ bytes: [UInt8], digest: String) {
        guard bytes.count <= ObjectCache.longestOriginalKept else { return }
        originals.write { kept in
            if kept.count < ObjectCache.originalsKept { kept[digest] = bytes }
        }
    }

    /// One fact about one file, read by the first thread that needs it. A second thread that
    /// needs it meanwhile waits for that read instead of making its own (a pass's workers all
    /// start on processes that map the same libc, whose symbols each parsed on a cold cache);
    /// threads that need other facts never wait for it. A failed read is not kept: the next
    /// thread tries again.
    private final class Fact<Value: Sendable>: Sendable {
        let value = ReadMostly<Value?>(nil)
    }

    /// An empty cache.
    public init() {}

    /// The fact under `key` in `store`, loaded once when missing (see `Fact`). A load never asks
    /// the cache for another fact, so it never waits for itself.
    private func cached<Key: Hashable & Sendable, Value: Sendable>(_ store: ReadMostly<[Key: Fact<Value>]>, _ key: Key,
                                                                   load: () throws -> Value) throws -> Value {
        let fact = store.read { $0[key] } ?? store.write { facts in
            if let known = facts[key] { return known }
            let fresh = Fact<Value>()
            facts[key] = fresh
            return fresh
        }
        if let known = fact.value.read({ $0 }) { return known }
        return try fact.value.write { value throws -> Value in
            if let known = value { return known }
            let loaded = try load()
            value = loaded
            return loaded
        }
    }

    /// The identity of the file behind `mapping`, read through `path`; nil for non-ELF files.
    func identity(of mapping: MemoryMapping, path: @autoclosure () -> String) -> ELFIdentity? {
        identity(of: FileKey(mapping), path: path())
    }

    /// The identity of `file`, read through `path` (a descriptor's, say); nil for non-ELF files.
    func identity(of file: FileKey, path: @autoclosure () -> String) -> ELFIdentity? {
        (try? cached(identities, file) { try? ELFFile.readIdentity(path: path()) }) ?? nil
    }

    /// Defined global and weak dynamic symbols of `object`, by name.
    func exports(of object: LoadedObject) throws -> [String: [ELFSymbol]] {
        try cached(exports, object.fileKey) {
            let elf = try ELFFile.load(path: object.readablePath)
            var table: [String: [ELFSymbol]] = [:]
            for symbol in try elf.dynamicSymbols() where symbol.isDefined {
                switch symbol.binding {
                case .global, .weak: table[symbol.name, default: []].append(symbol)
                default: continue
                }
            }
            return table
        }
    }

    /// The relocation slots, dynamic section and TLS facts of `object` (see `ObjectLinkFacts`).
    func linkFacts(of object: LoadedObject) throws -> ObjectLinkFacts {
        try cached(linkFacts, object.fileKey) { try ObjectLinkFacts(elf: ELFFile.load(path: object.readablePath)) }
    }

    /// The parsed patch object at `path`, parsed once per file version (device, inode, size, mtime),
    /// with the file it was read from.
    func patchFile(at path: String) throws -> PatchFile {
        let info = try Files.status(path)
        let stamp = [Int(info.st_dev), Int(info.st_ino), Int(info.st_size), info.st_mtim.tv_sec, info.st_mtim.tv_nsec]
        if let known = patchObjects.read({ $0[path] }), known.stamp == stamp { return known.file }
        let object = try PatchObject(path: path)
        let file = PatchFile(object: object, file: StartFile(info), farAreaBytes: PatchLoader.farAreaBytes(of: object, path: path))
        patchObjects.write { $0[path] = (stamp, file) }
        return file
    }

    /// Where the libgcc_s `object` keeps its registered unwind tables, read from its
    /// `__register_frame_info_bases`; nil when that code is not recognised.
    func unwinderLayout(of object: LoadedObject) -> UnwinderRegistryLayout? {
        (try? cached(unwinderLayouts, object.fileKey) { () -> UnwinderRegistryLayout? in
            guard let elf = try? ELFFile.load(path: object.readablePath),
                  let function = try? elf.dynamicSymbols().first(where: { $0.name == "__register_frame_info_bases" && $0.isDefined }),
                  function.size > 0, function.size < 4096,
                  let bytes = try? elf.bytes(atVirtualAddress: function.value, count: Int(function.size)) else { return nil }
            return HostArchitecture.unwinderRegistry(inRegisterFunction: bytes, at: function.value)
        }) ?? nil
    }

    /// The file offset of a system call instruction in an executable mapping of this file.
    func syscallInstructionOffset(in mapping: MemoryMapping, path: String) -> UInt64? {
        (try? cached(syscallOffsets, FileKey(mapping)) { () -> UInt64? in
            guard let file = try? OpenFile(path: path, flags: O_RDONLY),
                  let bytes = try? file.read(at: mapping.offset, count: Int(min(mapping.size, 4 << 20))),
                  let index = HostArchitecture.firstSystemCallInstruction(in: bytes) else { return nil }
            return mapping.offset + UInt64(index)
        }) ?? nil
    }
}

/// Groups a process's mappings into the ELF objects it has loaded.
enum LoadedObjects {
    /// Every ELF object `pid` maps, in address order, with build-ids and load biases.
    static func of(pid: ProcessID, mappings: [MemoryMapping], cache: ObjectCache) -> [LoadedObject] {
        var objects: [LoadedObject] = []
        var current: (key: FileKey, path: String, identity: ELFIdentity, list: [MemoryMapping])?
        func flush() {
            guard let group = current else { return }
            current = nil
            guard let first = group.list.first(where: { $0.offset == group.identity.firstLoadFileOffset }) else { return }
            objects.append(LoadedObject(
                path: group.path, isDeleted: first.isDeleted, buildID: group.identity.buildID,
                loadBias: first.start &- group.identity.firstLoadVirtualAddress, mappings: group.list,
                readablePath: ProcFS.mappedFilePath(of: pid, mapping: first)))
        }
        for mapping in mappings {
            guard mapping.inode != 0, !mapping.path.isEmpty else { continue }
            let key = FileKey(mapping)
            // Later mappings of the same file extend the object; its first one starts a new copy.
            // Appended in place: a copy of the group bound here would make the append copy its list.
            if current?.key == key, let start = current?.identity.firstLoadFileOffset, mapping.offset != start {
                current!.list.append(mapping)
                continue
            }
            flush()
            // Only a mapping of the file's start can begin an object; others belong to none.
            guard let identity = cache.identity(of: mapping, path: ProcFS.mappedFilePath(of: pid, mapping: mapping)),
                  mapping.offset == identity.firstLoadFileOffset else { continue }
            current = (key, mapping.path, identity, [mapping])
        }
        flush()
        return objects
    }
}
