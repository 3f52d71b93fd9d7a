import Artifact
import Glibc

/// A scratch file for `readIdentity`, which reads through a path: an unlinked file in /dev/shm,
/// reached as /proc/self/fd/N, stays off the disk and vanishes with the process.
private let identityFile: Int32 = {
    let path = "/dev/shm/elf-fuzz-\(getpid())"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    unlink(path)
    return fd
}()

/// libFuzzer entry point: parses the input as ELF and calls every accessor; any trap or sanitizer
/// report is a bug, a thrown `ArtifactError` is the expected outcome for bad input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzELFReader(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    exerciseIdentity(bytes)
    guard let elf = try? ELFFile(path: "fuzz-input", bytes: bytes) else { return 0 }
    _ = elf.fileType
    _ = elf.buildID
    for section in elf.sections { _ = elf.section(named: section.name) }
    _ = try? elf.symbols()
    _ = try? elf.dynamicSymbols()
    _ = try? elf.dynamicEntries()
    _ = try? elf.relocations()
    for header in elf.programHeaders {
        _ = elf.fileOffset(ofVirtualAddress: header.virtualAddress)
        _ = elf.fileOffset(ofVirtualAddress: header.virtualAddress &+ header.fileSize)
        _ = try? elf.bytes(atVirtualAddress: header.virtualAddress, count: 16)
        _ = try? elf.bytes(atVirtualAddress: header.virtualAddress &+ header.memorySize &- 1, count: 1)
    }
    if let patch = try? PatchObject(elf: elf) {
        _ = patch.segments
        _ = patch.imageSize
        for symbol in (try? elf.dynamicSymbols()) ?? [] { _ = patch.exportedAddress(of: symbol.name) }
        _ = try? patch.relocationWrites(loadBase: 0x7f12_3456_0000) { $0.isWeak ? nil : 0x5555_0000_1000 }
        _ = try? patch.relocationWrites(loadBase: 0xffff_ffff_ffff_f000) { _ in 0 }
    }
    return 0
}

private func exerciseIdentity(_ bytes: [UInt8]) {
    guard identityFile >= 0, ftruncate(identityFile, 0) == 0 else { return }
    let written = bytes.withUnsafeBytes { pwrite(identityFile, $0.baseAddress, $0.count, 0) }
    guard written == bytes.count else { return }
    _ = try? ELFFile.readIdentity(path: "/proc/self/fd/\(identityFile)")
}
