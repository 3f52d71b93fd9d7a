import AgentCore
import Foundation
import Testing

private let utc: Calendar = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar
}()

@Test func request_writesTheDebianBannerOurReasonAndThePackageNamesInPkgs() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let request = RebootRequest(file: directory.path + "/reboot-required")
    #expect(!request.isRequested)
    try request.request(releaseID: "base-2", reason: "baseline base-2 installed (kernel 6.1.0-30)",
                        packages: ["linux-image-6.1.0-30-amd64", "libssl3"])
    try request.request(releaseID: "base-2", reason: "baseline base-2 installed (kernel 6.1.0-30)",
                        packages: ["linux-image-6.1.0-30-amd64", "libssl3"])
    try request.request(releaseID: "fix-1", reason: "libssl\nlayout change", packages: ["libssl3", "libssl3"])
    #expect(try directory.read("reboot-required") == """
        *** System restart required ***
        hotpatch-agent: base-2: baseline base-2 installed (kernel 6.1.0-30) (packages: linux-image-6.1.0-30-amd64 libssl3)
        hotpatch-agent: fix-1: libssl layout change (packages: libssl3)

        """)
    // Package names, one a line, each once: what unattended-upgrades and update-notifier write.
    #expect(try directory.read("reboot-required.pkgs") == "linux-image-6.1.0-30-amd64\nlibssl3\n")
    #expect(request.isRequested)
    #expect(request.requestedReleases == ["base-2", "fix-1"])
}

@Test func request_forPlainFilesOnly_namesTheAgentsPackage() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let request = RebootRequest(file: directory.path + "/reboot-required")
    try request.request(releaseID: "B2", reason: "planned baseline B2", packages: [])
    #expect(try directory.read("reboot-required.pkgs") == "hotpatch-agent\n")
    #expect(!(try directory.read("reboot-required.pkgs")).contains("B2"))
}

@Test func clear_whenOnlyOurRequest_removesBothFiles() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let request = RebootRequest(file: directory.path + "/reboot-required")
    try request.request(releaseID: "base-2", reason: "baseline", packages: ["tiny"])
    try request.clear()
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == [])
    #expect(!request.isRequested)
    try request.clear()  // nothing to clear is fine
}

@Test func request_andClear_keepWhatOtherToolsWrote_withoutDuplicates() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try directory.write("reboot-required", "*** System restart required ***\n")
    try directory.write("reboot-required.pkgs", "linux-image-6.1.0-30-amd64\nlibc6\n")
    let request = RebootRequest(file: directory.path + "/reboot-required")
    try request.request(releaseID: "fix-1", reason: "libssl layout change", packages: ["libssl3", "libc6"])
    #expect(try directory.read("reboot-required.pkgs") == "linux-image-6.1.0-30-amd64\nlibc6\nlibssl3\n")
    #expect(try directory.read("reboot-required") == """
        *** System restart required ***
        hotpatch-agent: fix-1: libssl layout change (packages: libssl3 libc6)

        """)
    try request.clear()
    #expect(try directory.read("reboot-required") == "*** System restart required ***\n")
    #expect(try directory.read("reboot-required.pkgs") == "linux-image-6.1.0-30-amd64\n")
    #expect(!request.isRequested)
}

@Test func clear_ofARequestAnOlderAgentMade_removesTheReleaseIDItListed() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try directory.write("reboot-required", "*** System restart required ***\nhotpatch-agent: B2: planned baseline B2\n")
    try directory.write("reboot-required.pkgs", "libc6\nB2\n")
    try RebootRequest(file: directory.path + "/reboot-required").clear()
    #expect(try directory.read("reboot-required.pkgs") == "libc6\n")
}

@Test func shouldRebootNow_onlyUnderAutoWithSomethingPendingInsideTheWindow() {
    let window = MaintenanceWindow.parse("Sun 02:00-04:00")
    let inside = utc.date(from: DateComponents(year: 2024, month: 6, day: 9, hour: 3))!   // Sunday
    let outside = utc.date(from: DateComponents(year: 2024, month: 6, day: 10, hour: 3))! // Monday
    #expect(RebootAction.shouldRebootNow(policy: .auto, window: window, now: inside, pending: true, calendar: utc))
    #expect(!RebootAction.shouldRebootNow(policy: .auto, window: window, now: outside, pending: true, calendar: utc))
    #expect(!RebootAction.shouldRebootNow(policy: .auto, window: window, now: inside, pending: false, calendar: utc))
    #expect(RebootAction.shouldRebootNow(policy: .auto, window: nil, now: outside, pending: true, calendar: utc))
    for policy in [RebootPolicy.never, .request] {
        #expect(!RebootAction.shouldRebootNow(policy: policy, window: nil, now: inside, pending: true, calendar: utc))
    }
}

@Test func reboot_runsSystemctlNoBlockReboot_andReportsItsFailure() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let fake = try directory.write("systemctl", "#!/bin/sh\necho \"$@\" > \(directory.path)/called\n")
    chmod(fake, 0o755)
    try RebootAction.reboot(systemctl: fake)
    #expect(try directory.read("called") == "--no-block reboot\n")
    let failing = try directory.write("failing", "#!/bin/sh\necho 'Failed to reboot: Access denied' >&2\nexit 1\n")
    chmod(failing, 0o755)
    #expect(throws: AgentCoreError.commandFailed(command: "\(failing) --no-block reboot", status: 1, output: "Failed to reboot: Access denied\n")) {
        try RebootAction.reboot(systemctl: failing)
    }
}

@Test func reboot_whenSystemctlHangs_givesUpAtTheTimeout() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let hanging = try directory.write("systemctl", "#!/bin/sh\nexec sleep 60\n")
    chmod(hanging, 0o755)
    let started = Date()
    #expect(throws: AgentCoreError.self) { try RebootAction.reboot(systemctl: hanging, timeoutSeconds: 0.3) }
    #expect(Date().timeIntervalSince(started) < 5)
}
