import ArgumentParser
import Foundation
import Glibc
import LinuxSystem

/// `--with-deb FILE` (repeatable), for `hotpatch`, `build` and `build-deb`: the fixed Debian
/// packages a hotpatch release carries. The agent patches every running process first, then
/// installs these packages, so processes started later load the fixed files; no reboot, no restart.
struct WithDebOptions: ParsableArguments {
    @Option(name: .customLong("with-deb"),
            help: ArgumentHelp("A fixed Debian binary package the release carries: the agent installs it once the running processes are patched, and asks for no reboot (repeatable).",
                               valueName: "FILE.deb"))
    var debs: [String] = []

    /// Every `--with-deb` file read and checked (`CarriedPackage.read`), in command-line order;
    /// refuses two files of one package and architecture, which dpkg would install one over the other.
    func packages() throws -> [CarriedPackage] {
        try CarriedPackage.readAll(debs)
    }
}

/// A Debian binary package a hotpatch release carries, as read from the file itself.
struct CarriedPackage: Equatable {
    /// The file, as given.
    var path: String
    /// `Package:` of its control file.
    var name: String
    /// `Version:`.
    var version: String
    /// `Architecture:`.
    var architecture: String
    /// The source package it was built from (`Source:`, else its own name).
    var sourceName: String = ""
    /// The source package's version (`Source:`'s version, else `Version:`).
    var sourceVersion: String = ""

    /// The first bytes of every Debian binary package: an ar archive whose first member is
    /// `debian-binary` (deb(5)).
    static let arMagic = Array("!<arch>\n".utf8)
    static let firstMember = Array("debian-binary".utf8)

    /// Reads `paths` in order; refuses a path given twice and two files of one package and architecture.
    static func readAll(_ paths: [String]) throws -> [CarriedPackage] {
        var packages: [CarriedPackage] = []
        for path in paths {
            let package = try read(path)
            if let earlier = packages.first(where: { $0.name == package.name && $0.architecture == package.architecture }) {
                throw PackError("--with-deb \(path) and --with-deb \(earlier.path) are both package \(package.name) (\(package.architecture)): give one version of each package")
            }
            if let earlier = packages.first(where: { Files.baseName($0.path) == Files.baseName(path) }) {
                throw PackError("--with-deb \(path) and --with-deb \(earlier.path) have the same file name: rename one")
            }
            packages.append(package)
        }
        return packages
    }

    /// Reads and checks one `--with-deb` file: a readable regular file, an ar archive whose first
    /// member is `debian-binary` (a Debian binary package), whose control fields `dpkg-deb --show`
    /// reads (name, version, architecture). Throws a `PackError` naming the path and what is wrong.
    static func read(_ path: String) throws -> CarriedPackage {
        let head: [UInt8]
        let isRegular: Bool
        do throws(SystemError) {
            let file = try OpenFile(path: path, flags: O_RDONLY | O_NONBLOCK)
            isRegular = try file.status().st_mode & S_IFMT == S_IFREG
            head = try isRegular ? file.read(at: 0, count: 8 + 16) : []
        } catch {
            throw PackError("--with-deb \(path): cannot read it: \(SystemError.errnoText(error.errno))")
        }
        guard isRegular else { throw PackError("--with-deb \(path): not a regular file") }
        // ar: the 8-byte magic, then the first member's 16-byte name field ("debian-binary   ").
        guard head.count == 24, Array(head.prefix(8)) == arMagic,
              Array(head[8..<(8 + firstMember.count)]) == firstMember else {
            throw PackError("--with-deb \(path): not a Debian binary package (a .deb is an ar archive whose first member is debian-binary)")
        }
        let dpkgDeb = try Tools.find("dpkg-deb")
        let finished: ChildProcess.Finished
        do throws(SystemError) {
            finished = try ChildProcess.run(dpkgDeb, ["--show", "--showformat=${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\t${source:Version}", path])
        } catch {
            throw PackError(error)
        }
        let fields = String(decoding: finished.output, as: UTF8.self).split(separator: "\t", omittingEmptySubsequences: false)
        guard finished.status == 0, fields.count == 5, fields.allSatisfy({ !$0.isEmpty }) else {
            let said = String(decoding: finished.errorOutput, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw PackError("--with-deb \(path): dpkg-deb cannot read its control file (exit status \(finished.status))"
                            + (said.isEmpty ? "" : ": \(said)"))
        }
        return CarriedPackage(path: path, name: String(fields[0]), version: String(fields[1]), architecture: String(fields[2]),
                              sourceName: String(fields[3]), sourceVersion: String(fields[4]))
    }
}
