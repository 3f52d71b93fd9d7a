import AgentCore
@testable import Artifact
import Testing

private func hotpatch(_ id: String, baseline: String, level: Int) -> ChannelRelease {
    .hotpatch(HotpatchRelease(hotpatch: Hotpatch(id: id, baseline: baseline, level: level, targets: []),
                              description: "", cves: ["CVE-2026-\(level)"]))
}
private func baseline(_ id: String) -> ChannelRelease {
    .baseline(BaselineRelease(id: id, planned: true, description: "", cves: [], files: []))
}
private func fix(_ id: String, baseline: String) -> ChannelRelease {
    .fix(FixRelease(id: id, baseline: baseline, description: "", cves: [], files: []))
}

private func decide(_ releases: [ChannelRelease], active: String? = "B1", installed: Set<String> = [],
                    pending: Set<String> = [], quarantined: Set<String> = [], held: Set<String> = [],
                    enrolled: Bool = true) -> ReleasePlan {
    ReleasePlan.decide(releases: releases, activeBaseline: active, installed: installed, pendingReboot: pending,
                       quarantined: quarantined, held: held, enrolled: enrolled)
}

@Test func decide_desiresTheHighestLevelOfTheActiveBaselineOnly() {
    let plan = decide([baseline("B1"), hotpatch("h1", baseline: "B1", level: 1), hotpatch("h2", baseline: "B1", level: 2),
                       baseline("B2"), hotpatch("k1", baseline: "B2", level: 1)], installed: ["B2"])
    #expect(plan.desired?.id == "h2")
}

@Test func decide_whenHighestLevelIsQuarantinedOrHeld_fallsBackAndSaysWhy() {
    let releases = [baseline("B1"), hotpatch("h1", baseline: "B1", level: 1), hotpatch("h2", baseline: "B1", level: 2),
                    hotpatch("h3", baseline: "B1", level: 3)]
    let plan = decide(releases, quarantined: ["h3"], held: ["h2"])
    #expect(plan.desired?.id == "h1")
    #expect(plan.skipped == ["h3": "quarantined", "h2": "held by an administrator"])
}

@Test func decide_whenUnenrolled_desiresNothingButStillInstallsBaselines() {
    let plan = decide([baseline("B1"), hotpatch("h1", baseline: "B1", level: 1), baseline("B2")], enrolled: false)
    #expect(plan.desired == nil)
    #expect(plan.baselineToInstall == "B2")
}

@Test func decide_newerBaseline_isInstalledOnceThenWaitsForTheReboot() {
    let releases = [baseline("B1"), baseline("B2"), baseline("B3")]
    #expect(decide(releases).baselineToInstall == "B3", "only the newest: baselines are cumulative")
    #expect(decide(releases, pending: ["B3"]).baselineToInstall == nil)
    #expect(decide(releases, active: "B3").baselineToInstall == nil)
}

@Test func decide_fixesOfTheActiveBaselineAreInstalledOnce() {
    let releases = [baseline("B1"), fix("f1", baseline: "B1"), fix("f0", baseline: "B0"), fix("f2", baseline: "B1")]
    #expect(decide(releases).fixesToInstall == ["f1", "f2"])
    #expect(decide(releases, installed: ["f1"], pending: ["f2"]).fixesToInstall == [])
}

@Test func decide_withoutActiveBaseline_appliesNoHotpatch() {
    let plan = decide([baseline("B1"), hotpatch("h1", baseline: "B1", level: 1)], active: nil)
    #expect(plan.desired == nil)
    #expect(plan.baselineToInstall == "B1")
}

@Test func adopt_picksTheNewestBaselineMatchingTheDisk() {
    let baselines = ["B1", "B2", "B3"].map { BaselineRelease(id: $0, planned: true, description: "", cves: [], files: []) }
    #expect(ReleasePlan.baselineToAdopt(baselines) { $0.id != "B3" } == "B2")
    #expect(ReleasePlan.baselineToAdopt(baselines) { _ in false } == nil)
}
