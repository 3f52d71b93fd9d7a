@testable import AgentCore
import Foundation
import Glibc
import Testing

/// The rules alone, on lstat-like values: which directories and links a root write may go through.
@Suite struct InstallPathRulesTests {
    let trusted: Set<uid_t> = [0]
    let rootDirectory = PathEntry(owner: 0, mode: S_IFDIR | 0o755)
    let stickyTmp = PathEntry(owner: 0, mode: S_IFDIR | 0o1777)

    @Test func directory_ownedByRootAndWritableOnlyByIt_isTrusted() {
        #expect(InstallPathRules.problem(directory: rootDirectory, child: PathEntry(owner: 0, mode: S_IFDIR | 0o755), trusted: trusted) == nil)
        #expect(InstallPathRules.problem(directory: rootDirectory, child: nil, trusted: trusted) == nil)
        // The child's owner does not matter in a directory only root can change.
        #expect(InstallPathRules.problem(directory: rootDirectory, child: PathEntry(owner: 65534, mode: S_IFREG | 0o644), trusted: trusted) == nil)
    }

    @Test func directory_ownedByAnotherUser_isRefused() {
        let problem = InstallPathRules.problem(directory: PathEntry(owner: 65534, mode: S_IFDIR | 0o755), child: nil, trusted: trusted)
        #expect(problem?.contains("uid 65534") == true)
    }

    @Test func directory_writableByGroupOrOthers_isRefused() {
        for mode: mode_t in [0o775, 0o757, 0o777] {
            let problem = InstallPathRules.problem(directory: PathEntry(owner: 0, mode: S_IFDIR | mode), child: nil, trusted: trusted)
            #expect(problem?.contains(String(mode, radix: 8)) == true, "mode \(String(mode, radix: 8))")
        }
    }

    @Test func stickyWorldWritableDirectory_isAllowedOnlyWhenTheNextComponentIsRoots() {
        #expect(InstallPathRules.problem(directory: stickyTmp, child: PathEntry(owner: 0, mode: S_IFDIR | 0o700), trusted: trusted) == nil)
        let problem = InstallPathRules.problem(directory: stickyTmp, child: PathEntry(owner: 65534, mode: S_IFDIR | 0o700), trusted: trusted)
        #expect(problem?.contains("uid 65534") == true)
        // A sticky directory of another user: its owner may remove anything in it.
        #expect(InstallPathRules.problem(directory: PathEntry(owner: 65534, mode: S_IFDIR | 0o1777),
                                         child: PathEntry(owner: 0, mode: S_IFDIR | 0o755), trusted: trusted) != nil)
    }

    @Test func symbolicLink_ownedByRootInARootDirectory_isFollowed_likeMergedUsrLib() {
        #expect(InstallPathRules.problemFollowing(link: PathEntry(owner: 0, mode: S_IFLNK | 0o777), in: rootDirectory, trusted: trusted) == nil)
    }

    @Test func symbolicLink_ownedByAnotherUser_orInAWritableDirectory_isRefused() {
        let userLink = InstallPathRules.problemFollowing(link: PathEntry(owner: 65534, mode: S_IFLNK | 0o777), in: rootDirectory, trusted: trusted)
        #expect(userLink?.contains("uid 65534") == true)
        let inTmp = InstallPathRules.problemFollowing(link: PathEntry(owner: 0, mode: S_IFLNK | 0o777), in: stickyTmp, trusted: trusted)
        #expect(inTmp?.contains("1777") == true)
    }

    @Test func notADirectory_isRefused() {
        #expect(InstallPathRules.problem(directory: PathEntry(owner: 0, mode: S_IFREG | 0o644), child: nil, trusted: trusted) != nil)
    }
}

/// The resolver on real directories and links (needs root to give them to `nobody`).
@Suite struct InstallPathResolverTests {
    static let nobody: uid_t = 65534

    private func scratch() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.path + "/usr/lib", withIntermediateDirectories: true)
        for path in [directory.path + "/usr", directory.path + "/usr/lib"] { chmod(path, 0o755) }
        return directory
    }

    @Test func resolve_throughARootOwnedRelativeLink_givesTheRealPath() throws {
        let directory = try scratch()
        defer { directory.remove() }
        #expect(symlink("usr/lib", directory.path + "/lib") == 0)
        #expect(try InstallPath.resolve(directory.path + "/lib/libdemo.so.1") == directory.path + "/usr/lib/libdemo.so.1")
    }

    @Test func resolve_ofTheHostsOwnMergedUsrLink_followsIt() throws {
        let info = try #require(try? FileManager.default.destinationOfSymbolicLink(atPath: "/lib"), "this host has no merged /usr")
        #expect(try InstallPath.resolve("/lib/hotpatch-agent-no-such-file") == (info.hasPrefix("/") ? info : "/" + info) + "/hotpatch-agent-no-such-file")
    }

    @Test func resolve_inATemporaryDirectoryUnderStickyTmp_isAllowed() throws {
        let directory = try scratch()
        defer { directory.remove() }
        #expect(try InstallPath.resolve(directory.path + "/usr/lib/x") == directory.path + "/usr/lib/x")
    }

    @Test(.enabled(if: geteuid() == 0)) func resolve_throughADirectoryOwnedByNobody_isRefusedNamingIt() throws {
        let directory = try scratch()
        defer { directory.remove() }
        #expect(chown(directory.path + "/usr", Self.nobody, Self.nobody) == 0)
        let error = try #require(throws: AgentCoreError.self) { try InstallPath.resolve(directory.path + "/usr/lib/libdemo.so.1") }
        guard case let .untrustedPath(path, component, reason) = error else { Issue.record("\(error)"); return }
        #expect(path == directory.path + "/usr/lib/libdemo.so.1")
        #expect(component == directory.path + "/usr")
        #expect(reason.contains("uid 65534"))
    }

    @Test(.enabled(if: geteuid() == 0)) func resolve_throughALinkOwnedByNobody_isRefusedNamingIt() throws {
        let directory = try scratch()
        defer { directory.remove() }
        #expect(symlink("usr/lib", directory.path + "/lib") == 0)
        #expect(lchown(directory.path + "/lib", Self.nobody, Self.nobody) == 0)
        #expect(throws: AgentCoreError.untrustedPath(path: directory.path + "/lib/x", component: directory.path + "/lib",
                                                      reason: "is a symbolic link owned by uid 65534, who could point it anywhere")) {
            try InstallPath.resolve(directory.path + "/lib/x")
        }
    }

    @Test func resolve_throughALinkInAGroupWritableDirectory_isRefused() throws {
        let directory = try scratch()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.path + "/shared", withIntermediateDirectories: true)
        chmod(directory.path + "/shared", 0o775)
        #expect(symlink("../usr/lib", directory.path + "/shared/lib") == 0)
        #expect(throws: AgentCoreError.self) { try InstallPath.resolve(directory.path + "/shared/lib/x") }
    }

    @Test func resolve_ofALinkLoop_isRefusedNotFollowedForever() throws {
        let directory = try scratch()
        defer { directory.remove() }
        #expect(symlink("b", directory.path + "/a") == 0)
        #expect(symlink("a", directory.path + "/b") == 0)
        let error = try #require(throws: AgentCoreError.self) { try InstallPath.resolve(directory.path + "/a/x") }
        guard case let .system(failure) = error else { Issue.record("\(error)"); return }
        let number = failure.errno, subject = failure.subject
        #expect(number == ELOOP)
        #expect(subject.contains(directory.path + "/a/x"))
    }

    @Test func resolve_whenADirectoryIsMissing_namesItAndTheTarget() throws {
        let directory = try scratch()
        defer { directory.remove() }
        let error = try #require(throws: AgentCoreError.self) { try InstallPath.resolve(directory.path + "/etc/app/app.conf") }
        guard case let .system(failure) = error else { Issue.record("\(error)"); return }
        let number = failure.errno, subject = failure.subject
        #expect(number == ENOENT)
        #expect(subject.contains(directory.path + "/etc"))
        #expect(subject.contains(directory.path + "/etc/app/app.conf"))
    }
}
