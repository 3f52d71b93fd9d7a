import Foundation

/// A Debian source package's control file (`.dsc`), as `apt-get source SRC=V` downloads it, read
/// by `hotpatch-pack build-deb`: it says which binary packages the source builds (whose shipped
/// ELF files are the targets) and where `dpkg-source -x` unpacks it.
package struct DebianSourceControl: Sendable, Equatable {
    /// One line of `Package-List`.
    package struct Binary: Sendable, Equatable {
        /// The binary package's name (`libexpat1`).
        package var name: String
        /// `deb` or `udeb` (installer packages, never on a running host).
        package var type: String
        /// Its section (`libs`, `libdevel`, `debian-installer`).
        package var section: String
        /// The architectures of its `arch=` field (`any`, `all`, `amd64`, ...).
        package var architectures: [String]
    }

    /// `Source:`.
    package var source: String
    /// `Version:` (`2.5.0-1+deb12u2`, an epoch `1:` included when there is one).
    package var version: String
    /// `Package-List:`, in order; from `Binary:` (each a `deb` of any architecture, section
    /// unknown) when the `.dsc` is older than `Package-List`.
    package var binaries: [Binary]

    /// Parses the text of a `.dsc` (an OpenPGP clear-signed one included); `path` names it in errors.
    package init(text: String, path: String) throws(PackError) {
        var fields: [String: [String]] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("-----BEGIN PGP SIGNATURE") { break }
            if line.hasPrefix(" "), let name = current {
                fields[name, default: []].append(line.trimmingCharacters(in: .whitespaces))
            } else if let colon = line.firstIndex(of: ":"), !line.hasPrefix("-----") {
                let name = String(line[..<colon])
                current = name
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                fields[name] = value.isEmpty ? [] : [value]
            } else {
                current = nil
            }
        }
        guard let source = fields["Source"]?.first, let version = fields["Version"]?.first else {
            throw PackError("\(path) is not a Debian source control file: it has no Source: or Version: field")
        }
        self.source = source
        self.version = version
        guard !source.contains(" "), !version.contains(" "), version.first?.isNumber == true else {
            throw PackError("\(path) is not a Debian source control file: Source: '\(source)' or Version: '\(version)' is malformed")
        }
        let listed = fields["Package-List"] ?? []
        guard !listed.isEmpty else {
            let names = (fields["Binary"] ?? []).joined(separator: ",").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            binaries = names.map { Binary(name: $0, type: "deb", section: "", architectures: ["any"]) }
            return
        }
        binaries = try listed.map { line throws(PackError) in
            let words = line.split(separator: " ").map(String.init)
            guard words.count >= 4 else {
                throw PackError("\(path): Package-List line '\(line)' has fewer than the four fields name, type, section, priority")
            }
            let architectures = words.dropFirst(4).first { $0.hasPrefix("arch=") }.map { $0.dropFirst(5).split(separator: ",").map(String.init) } ?? ["any"]
            return Binary(name: words[0], type: words[1], section: words[2], architectures: architectures)
        }
    }

    /// The upstream part of the version: no epoch (`1:`), no Debian revision (after the last `-`).
    package var upstreamVersion: String {
        var version = Substring(self.version)
        if let colon = version.firstIndex(of: ":") { version = version[version.index(after: colon)...] }
        if let dash = version.lastIndex(of: "-") { version = version[..<dash] }
        return String(version)
    }

    /// The directory `dpkg-source -x` unpacks into, in the directory of the `.dsc`: `SOURCE-UPSTREAM`.
    package var unpackedDirectoryName: String {
        source + "-" + upstreamVersion
    }

    /// The binary packages whose ELF files hosts run, built for `architecture`: `deb`s (not the
    /// installer's `udeb`s), not development, documentation or debug packages (`-dev` holds
    /// `libfoo.a` and headers, `-dbg` debug files).
    package func runtimePackages(architecture: String) -> [String] {
        binaries.filter { binary in
            binary.type == "deb"
                && !binary.architectures.filter({ $0 == "any" || $0 == architecture || $0.hasSuffix("-" + architecture) }).isEmpty
                && !["-dev", "-doc", "-dbg"].contains(where: { binary.name.hasSuffix($0) })
                && !["libdevel", "doc", "debug"].contains(binary.section)
        }.map(\.name)
    }
}
