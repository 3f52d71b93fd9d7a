import Artifact
import Foundation
import LinuxSystem

/// The objects a target depends on (its `DT_NEEDED` entries, theirs, and so on) as the dynamic
/// linker would find them on this machine: `DT_RPATH` (when there is no `DT_RUNPATH`, inherited
/// from the objects that loaded it), `DT_RUNPATH`, `/etc/ld.so.cache`, then the default
/// directories. `LD_LIBRARY_PATH` is left out on purpose: the publisher's environment is not the
/// host's.
struct DependencyClosure {
    /// One object found, with the `DT_NEEDED` name that asked for it.
    struct Object {
        /// The name as `DT_NEEDED` gives it (`libc.so.6`).
        var name: String
        /// Where it was found.
        var path: String
        /// The parsed file.
        var elf: ELFFile
    }

    /// The objects found, in the breadth-first order the dynamic linker loads them (target excluded).
    var objects: [Object] = []
    /// `DT_NEEDED` names found nowhere, each with the object that needs it.
    var missing: [(name: String, neededBy: String)] = []

    /// The directories searched after the cache (glibc's built-in list for x86-64 Debian).
    static let defaultDirectories = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    /// A bound that no honest dependency tree reaches; a larger one is a loop the names hide.
    static let maximumObjects = 1024

    /// Finds the closure of `target` with the dynamic linker's search order; `cache` is
    /// `/etc/ld.so.cache` as read (empty when unreadable).
    static func find(for target: ELFFile, cache: LibraryCache) -> DependencyClosure {
        var closure = DependencyClosure()
        var seenPaths: Set<String> = [realPath(target.path)]
        var seenNames: Set<String> = []
        // Each queued object with the DT_RPATH directories it inherits from the objects that loaded it.
        var queue: [(elf: ELFFile, inheritedRunPath: [String])] = [(target, [])]
        var next = 0
        while next < queue.count, closure.objects.count < maximumObjects {
            let (object, inherited) = queue[next]
            next += 1
            guard let dynamic = try? DynamicStrings(object) else { continue }
            // $ORIGIN is the directory of the object as opened, made absolute (a target given as
            // "app" has its origin in the current directory).
            let origin = URL(fileURLWithPath: object.path).deletingLastPathComponent().path
            let ownRPath = dynamic.runPath.isEmpty ? expand(dynamic.rPath, origin: origin) : []
            let rPath = ownRPath + inherited
            let runPath = expand(dynamic.runPath, origin: origin)
            for name in dynamic.needed where seenNames.insert(name).inserted {
                guard let found = locate(name, rPath: dynamic.runPath.isEmpty ? rPath : [], runPath: runPath, cache: cache) else {
                    closure.missing.append((name, object.path))
                    continue
                }
                guard seenPaths.insert(realPath(found.path)).inserted else { continue }
                closure.objects.append(Object(name: name, path: found.path, elf: found))
                queue.append((found, rPath))
            }
        }
        return closure
    }

    /// The first file for `name` that parses as an object of the host architecture, in the
    /// dynamic linker's order; a name with a slash is a path.
    static func locate(_ name: String, rPath: [String], runPath: [String], cache: LibraryCache) -> ELFFile? {
        let candidates = name.contains("/")
            ? [name]
            : (rPath + runPath).map { $0 + "/" + name } + cache.paths(for: name) + defaultDirectories.map { $0 + "/" + name }
        for candidate in candidates {
            if let elf = try? ELFFile.load(path: candidate), elf.fileType == .sharedObject || elf.fileType == .executable {
                return elf
            }
        }
        return nil
    }

    /// Splits a colon-separated search path and substitutes `$ORIGIN`, `$LIB` and `$PLATFORM`
    /// (also in the `${…}` form) as the x86-64 dynamic linker does.
    static func expand(_ paths: [String], origin: String) -> [String] {
        paths.flatMap { $0.split(separator: ":").map(String.init) }.filter { !$0.isEmpty }.map { path in
            var expanded = path
            for (token, value) in [("ORIGIN", origin), ("LIB", "lib/x86_64-linux-gnu"), ("PLATFORM", "x86_64")] {
                expanded = expanded.replacingOccurrences(of: "${\(token)}", with: value)
                    .replacingOccurrences(of: "$\(token)", with: value)
            }
            return expanded
        }
    }

    /// `path` with symbolic links resolved, so one file found under two names is loaded once.
    static func realPath(_ path: String) -> String {
        URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }
}

/// The `DT_NEEDED`, `DT_RPATH`, `DT_RUNPATH` and `DT_SONAME` strings of an object, read from its dynamic
/// string table (`DT_STRTAB`, `DT_STRSZ`) through its segments.
struct DynamicStrings {
    /// `DT_NEEDED` names, in order.
    var needed: [String] = []
    /// `DT_RPATH` values (colon-separated lists).
    var rPath: [String] = []
    /// `DT_RUNPATH` values (colon-separated lists).
    var runPath: [String] = []
    /// `DT_SONAME`, the name a shared library is loaded by.
    var soname: String?

    static let DT_NEEDED: Int64 = 1
    static let DT_STRTAB: Int64 = 5
    static let DT_STRSZ: Int64 = 10
    static let DT_SONAME: Int64 = 14
    static let DT_RPATH: Int64 = 15
    static let DT_RUNPATH: Int64 = 29

    /// Reads them from `elf`; an object without a dynamic section has none.
    init(_ elf: ELFFile) throws {
        let entries = try elf.dynamicEntries()
        guard let table = entries.first(where: { $0.tag == Self.DT_STRTAB })?.value,
              let size = entries.first(where: { $0.tag == Self.DT_STRSZ })?.value,
              let count = Int(exactly: size) else { return }
        let strings = try elf.bytes(atVirtualAddress: table, count: count)
        func string(at offset: UInt64) throws -> String {
            guard offset < size, let end = strings[Int(offset)...].firstIndex(of: 0) else {
                throw ArtifactError.malformedELF(path: elf.path, reason: "dynamic string offset \(hex(offset)) is outside DT_STRTAB (\(size) bytes)")
            }
            return String(decoding: strings[Int(offset)..<end], as: UTF8.self)
        }
        for entry in entries {
            switch entry.tag {
            case Self.DT_NEEDED: needed.append(try string(at: entry.value))
            case Self.DT_RPATH: rPath.append(try string(at: entry.value))
            case Self.DT_RUNPATH: runPath.append(try string(at: entry.value))
            case Self.DT_SONAME: soname = try string(at: entry.value)
            default: continue
            }
        }
    }
}

/// `/etc/ld.so.cache` as glibc 2.32 and later write it ("glibc-ld.so.cache1.1"): library names
/// and the paths `ldconfig` found them at, in the cache's order of preference.
struct LibraryCache {
    private var entries: [String: [String]] = [:]

    /// The file's magic and version, and the header's size before the entries.
    static let magic = Array("glibc-ld.so.cache1.1".utf8)
    static let headerSize = 48
    static let entrySize = 24

    /// An empty cache: only the search paths and the default directories are searched.
    init() {}

    /// Parses `bytes`; a file in another format, or truncated, gives an empty cache (the dynamic
    /// linker then also searches only the default directories).
    init(bytes: [UInt8]) {
        guard bytes.count >= Self.headerSize, Array(bytes[0..<Self.magic.count]) == Self.magic,
              let count = Self.u32(in: bytes, at: 20) else { return }
        for index in 0..<Int(count) {
            let entry = Self.headerSize + index * Self.entrySize
            guard let keyOffset = Self.u32(in: bytes, at: entry + 4), let valueOffset = Self.u32(in: bytes, at: entry + 8),
                  let key = Self.string(in: bytes, at: Int(keyOffset)),
                  let value = Self.string(in: bytes, at: Int(valueOffset)) else { break }
            entries[key, default: []].append(value)
        }
    }

    /// Reads the cache at `path`.
    static func load(path: String = "/etc/ld.so.cache") -> LibraryCache {
        do throws(SystemError) {
            return LibraryCache(bytes: try Files.read(path, limit: 64 << 20))
        } catch {
            return LibraryCache()
        }
    }

    /// The paths the cache gives for `name`, best first.
    func paths(for name: String) -> [String] { entries[name] ?? [] }

    /// The little-endian 32-bit word at `offset` of the file.
    private static func u32(in bytes: [UInt8], at offset: Int) -> UInt32? {
        guard offset >= 0, offset <= bytes.count - 4 else { return nil }
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    /// The NUL-terminated string at `offset` of the file.
    private static func string(in bytes: [UInt8], at offset: Int) -> String? {
        guard offset >= 0, offset < bytes.count, let end = bytes[offset...].firstIndex(of: 0) else { return nil }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }
}
