import Artifact
import Foundation
import Glibc
import LinuxSystem

/// Finds a `--target`'s object in a build copy. The rule: the object is the regular file (not a
/// symbolic link, not a `.o` or `.a`) under the copy, ELF, whose file name equals the released
/// object's; when there is none, the ELF files whose `DT_SONAME` equals the released object's.
/// No candidate, or several, is an error that lists what was found.
package enum TargetLocator {
    /// The path of `released`'s object under `root`; `build` names the copy in errors.
    package static func locate(_ released: ELFFile, under root: String, build: String) throws(PackError) -> String {
        let name = Files.baseName(released.path)
        let files = elfFiles(under: root)
        var candidates = files.filter { Files.baseName($0) == name }
        var rule = "named \(name)"
        if candidates.isEmpty, let soname = try? DynamicStrings(released).soname {
            candidates = files.filter { (try? ELFFile.load(path: $0)).flatMap { try? DynamicStrings($0).soname } == soname }
            rule += " nor with DT_SONAME \(soname)"
        }
        func relative(_ path: String) -> String { String(path.dropFirst(root.count + 1)) }
        switch candidates.count {
        case 1:
            return candidates[0]
        case 0:
            let built = files.map(relative).sorted()
            let listed = built.prefix(10).joined(separator: ", ") + (built.count > 10 ? " and \(built.count - 10) more" : "")
            throw PackError("--target \(released.path): \(build) (\(root)) has no ELF file \(rule) (symbolic links, .o and .a files do not count); does --build build it? "
                            + (built.isEmpty ? "It has no ELF file at all." : "Its ELF files: \(listed)"))
        default:
            throw PackError("--target \(released.path): \(build) (\(root)) has \(candidates.count) ELF files \(rule): \(candidates.map(relative).sorted().joined(separator: ", ")); the rule needs exactly one (rename the released object's copy, or build only one of them)")
        }
    }

    /// Loads the released object and checks it can be a target: an ELF executable or shared object
    /// of this machine.
    package static func loadReleased(_ path: String) throws(PackError) -> ELFFile {
        let elf: ELFFile
        do { elf = try ELFFile.load(path: path) } catch { throw PackError("--target \(path): \(error)") }
        guard elf.fileType == .executable || elf.fileType == .sharedObject else {
            throw PackError("--target \(path) is an ELF \(elf.fileType), not an executable or a shared object: give the object hosts run")
        }
        return elf
    }

    /// Checks that the rebuild at `path` is an object of the released one's machine and type.
    package static func checkRebuild(_ path: String, of released: ELFFile, build: String) throws(PackError) -> ELFFile {
        let rebuild: ELFFile
        do { rebuild = try ELFFile.load(path: path) } catch { throw PackError("--target \(released.path): its rebuild in \(build): \(error)") }
        guard rebuild.fileType == released.fileType else {
            throw PackError("--target \(released.path) is an ELF \(released.fileType), but its rebuild \(path) in \(build) is an ELF \(rebuild.fileType): the build does not make the released object")
        }
        return rebuild
    }

    /// Whether the two files hold the same bytes (a reproducible build).
    package static func isByteIdentical(_ first: String, _ second: String) -> Bool {
        guard let one = try? Files.read(first, limit: ELFFile.maximumFileSize),
              let other = try? Files.read(second, limit: ELFFile.maximumFileSize) else { return false }
        return one == other
    }

    /// Every regular file under `root` that starts with the ELF magic, except `.o` and `.a` files;
    /// symbolic links are neither followed nor listed.
    static func elfFiles(under root: String) -> [String] {
        var found: [String] = []
        var pending = [root]
        while let folder = pending.popLast() {
            guard let names = try? Files.list(folder) else { continue }
            for name in names.sorted() {
                let path = folder + "/" + name
                guard let info = try? Files.linkStatus(path) else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: pending.append(path)
                case S_IFREG where !name.hasSuffix(".o") && !name.hasSuffix(".a") && hasELFMagic(path): found.append(path)
                default: continue
                }
            }
        }
        return found
    }

    /// Whether the file starts with `\x7fELF`.
    static func hasELFMagic(_ path: String) -> Bool {
        guard let file = try? OpenFile(path: path, flags: O_RDONLY | O_NONBLOCK),
              let head = try? file.read(at: 0, count: 4) else { return false }
        return head == [0x7f, 0x45, 0x4c, 0x46]
    }
}
