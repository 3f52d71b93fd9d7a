@testable import Pack
import Testing

/// The `.dsc` reader of `build-deb`'s first step, on the control file of the bookworm source
/// package `expat` 2.5.0-1+deb12u2 as `apt-get source` downloads it (checksums and signature cut).
@Suite struct DebianSourceTests {
    static let expat = """
        -----BEGIN PGP SIGNED MESSAGE-----
        Hash: SHA512

        Format: 3.0 (quilt)
        Source: expat
        Binary: libexpat1-dev, libexpat1, libexpat1-udeb, expat
        Architecture: any
        Version: 2.5.0-1+deb12u2
        Maintainer: Laszlo Boszormenyi (GCS) <gcs@debian.org>
        Build-Depends: debhelper-compat (= 13), docbook-to-man, docbook2x <!stage1>, libbsd-dev [kfreebsd-amd64 kfreebsd-i386 hurd-i386]
        Package-List:
         expat deb text optional arch=any
         libexpat1 deb libs optional arch=any
         libexpat1-dev deb libdevel optional arch=any
         libexpat1-udeb udeb debian-installer optional arch=any profile=!noudeb
        Files:
         8a2e3a3d8d2c0d0c7d0e0b1e2f7a6c55 8273 expat_2.5.0-1+deb12u2.debian.tar.xz

        -----BEGIN PGP SIGNATURE-----

        iQIyBAEBCgAdFiEEfYh9yLp7u6e4NeO63OMQ54ZMyL8FAmghAdsACgkQ3OMQ54ZM
        -----END PGP SIGNATURE-----

        """

    @Test func expatControl_namesItsRuntimePackagesAndWhereItUnpacks() throws {
        let control = try DebianSourceControl(text: Self.expat, path: "expat.dsc")
        #expect(control.source == "expat" && control.version == "2.5.0-1+deb12u2")
        #expect(control.binaries.map(\.name) == ["expat", "libexpat1", "libexpat1-dev", "libexpat1-udeb"])
        #expect(control.runtimePackages(architecture: "amd64") == ["expat", "libexpat1"])
        #expect(control.unpackedDirectoryName == "expat-2.5.0")
    }

    @Test func versionWithAnEpoch_unpacksWithoutIt() throws {
        let control = try DebianSourceControl(text: "Source: zlib\nVersion: 1:1.2.13.dfsg-1\n", path: "zlib.dsc")
        #expect(control.unpackedDirectoryName == "zlib-1.2.13.dfsg")
        #expect(control.binaries.isEmpty)
    }

    @Test func textWithoutSourceOrVersion_isRefused_namingTheFile() {
        #expect {
            try DebianSourceControl(text: "Format: 3.0 (quilt)\n", path: "broken.dsc")
        } throws: { error in
            "\(error)".contains("broken.dsc is not a Debian source control file")
        }
    }

    @Test func controlWithoutPackageList_takesItsBinaryPackagesFromTheBinaryField() throws {
        let control = try DebianSourceControl(text: "Source: hpdemo\nBinary: libhpdemo1, hpdemo-dev,\n hpdemo-doc\nVersion: 1.0\n", path: "hpdemo.dsc")
        #expect(control.binaries.map(\.name) == ["libhpdemo1", "hpdemo-dev", "hpdemo-doc"])
        #expect(control.runtimePackages(architecture: "amd64") == ["libhpdemo1"])
    }

    @Test func malformedVersion_isRefused_namingTheFile() {
        #expect(throws: PackError.self) { try DebianSourceControl(text: "Source: hpdemo\nVersion: not a version\n", path: "bad.dsc") }
    }
}
