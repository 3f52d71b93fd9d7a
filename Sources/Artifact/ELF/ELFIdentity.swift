import Architecture
import Glibc
import LinuxSystem

extension ELFFile {
    /// The most program-header bytes `readIdentity` reads; the kernel itself refuses more than 64 KiB.
    static let identityProgramTableLimit: UInt64 = 64 << 10
    /// The most note bytes `readIdentity` reads per PT_NOTE; real objects carry a few hundred.
    static let identityNoteLimit: UInt64 = 64 << 10

    /// Reads an object's build-id, type, first PT_LOAD and RELRO with a few pread(2) calls (ELF header,
    /// program headers, PT_NOTE contents), never the whole file: it runs for every mapped object.
    /// Throws `ArtifactError`: `.system` when the file cannot be read, `.malformedELF` when it does not parse.
    public static func readIdentity(path: String) throws -> ELFIdentity {
        do {
            return try scanIdentity(path: path)
        } catch let error as SystemError {
            throw ArtifactError.system(error)
        }
    }

    /// `readIdentity`'s reading, whose failed system calls `readIdentity` wraps.
    private static func scanIdentity(path: String) throws -> ELFIdentity {
        let file = try OpenFile(path: path, flags: O_RDONLY)
        let info = try file.status()
        let fileSize = UInt64(clamping: info.st_size)
        let headerBytes = try file.read(at: 0, count: ELFHeader.size)
        let header = try ELFHeader(headerBytes, path: path, fileSize: fileSize)

        var programCount = UInt64(header.programCount)
        if header.programCount == ELFHeader.PN_XNUM, header.sectionOffset != 0 {
            guard let end = ByteRange.add(header.sectionOffset, 64), end <= fileSize else {
                throw ArtifactError.malformedELF(path: path, reason: "section header table at \(elfHex(header.sectionOffset)) lies past the end of the file (\(fileSize) bytes)")
            }
            let first = try file.read(at: header.sectionOffset, count: 64)
            guard let record = ByteRecord(first, at: 0, size: 64) else {
                throw ArtifactError.malformedELF(path: path, reason: "section header table at \(elfHex(header.sectionOffset)) lies past the end of the file (\(fileSize) bytes)")
            }
            programCount = UInt64(record.u32(44))
        }
        guard let tableSize = ByteRange.multiply(programCount, 56), tableSize <= identityProgramTableLimit else {
            throw ArtifactError.malformedELF(path: path, reason: "\(programCount) program headers exceed the \(identityProgramTableLimit)-byte limit")
        }
        guard let tableEnd = ByteRange.add(header.programOffset, tableSize), tableEnd <= fileSize else {
            throw ArtifactError.malformedELF(path: path, reason: "program header table (\(programCount) entries at \(elfHex(header.programOffset))) extends past the end of the file (\(fileSize) bytes)")
        }
        let table = try file.read(at: header.programOffset, count: Int(tableSize))
        guard table.count == Int(tableSize) else {
            throw ArtifactError.malformedELF(path: path, reason: "program header table was cut short while reading (file shrank?)")
        }
        let programHeaders = try ELFHeader.programHeaders(in: table, tableOffset: 0, count: programCount,
                                                          fileSize: fileSize, path: path)
        guard let firstLoad = programHeaders.filter({ $0.type == ELFProgramHeader.PT_LOAD })
            .min(by: { $0.virtualAddress < $1.virtualAddress }) else {
            throw ArtifactError.malformedELF(path: path, reason: "has no PT_LOAD segment, so it cannot be mapped")
        }

        var buildID: BuildID?
        for note in programHeaders where note.type == ELFProgramHeader.PT_NOTE && note.fileSize > 0 {
            guard note.fileSize <= identityNoteLimit else {
                throw ArtifactError.malformedELF(path: path, reason: "PT_NOTE at \(elfHex(note.offset)) has \(note.fileSize) bytes, over the \(identityNoteLimit)-byte limit")
            }
            let contents = try file.read(at: note.offset, count: Int(note.fileSize))
            if let found = try ELFNotes.buildID(in: contents, alignment: note.alignment,
                                                what: "PT_NOTE at \(elfHex(note.offset))", path: path) {
                buildID = found
                break
            }
        }
        // The last one, as the dynamic linker keeps it.
        let relro = programHeaders.last { $0.type == ELFProgramHeader.PT_GNU_RELRO }
        return ELFIdentity(buildID: buildID, fileType: ELFFileType(raw: header.type),
                           firstLoadVirtualAddress: ByteRange.alignDown(firstLoad.virtualAddress, HostArchitecture.pageSize),
                           firstLoadFileOffset: ByteRange.alignDown(firstLoad.offset, HostArchitecture.pageSize),
                           spareCode: try spareCode(of: programHeaders, in: file, fileSize: fileSize),
                           relroVirtualAddress: relro?.virtualAddress, relroMemorySize: relro?.memorySize)
    }

    /// The largest run of zero bytes past the end of an executable segment within its last page, up
    /// to the page of the next segment: mapped executable, used by nothing. A segment whose memory
    /// is longer than its file part has none (its tail is not the file's).
    static func spareCode(of headers: [ELFProgramHeader], in file: borrowing OpenFile, fileSize: UInt64) throws -> SpareCode? {
        let page = HostArchitecture.pageSize
        let loads = headers.filter { $0.type == ELFProgramHeader.PT_LOAD }
        var best: SpareCode?
        for (index, segment) in loads.enumerated()
        where segment.flags.contains(.executable) && segment.fileSize == segment.memorySize && segment.fileSize > 0 {
            guard let end = ByteRange.add(segment.virtualAddress, segment.memorySize), end <= UInt64.max - page,
                  let fileEnd = ByteRange.add(segment.offset, segment.fileSize), fileEnd <= fileSize else { continue }
            var limit = ByteRange.alignDown(end + page - 1, page)
            // A segment whose pages reach into the tail's page is mapped over it.
            for (otherIndex, other) in loads.enumerated() where otherIndex != index {
                let otherStart = ByteRange.alignDown(other.virtualAddress, page)
                if (ByteRange.add(other.virtualAddress, other.memorySize) ?? .max) > end, otherStart < limit {
                    limit = max(end, otherStart)
                }
            }
            guard limit > end, (best?.length ?? 0) < limit - end else { continue }
            // Past the end of the file the page reads as zeros; before it the bytes must be zeros too.
            let inFile = Int(min(limit - end, fileSize - fileEnd))
            let bytes = inFile > 0 ? try file.read(at: fileEnd, count: inFile) : []
            guard bytes.count == inFile, bytes.allSatisfy({ $0 == 0 }) else { continue }
            best = SpareCode(virtualAddress: end, length: limit - end)
        }
        return best
    }
}
