import Artifact
import Testing
@testable import Engine

/// Levels are cumulative per object: which fix each object runs at a desired level. Values only.
@Suite struct CumulativeFixesTests {
    private let libA = BuildID(bytes: [0xaa])
    private let libB = BuildID(bytes: [0xbb])
    private let libC = BuildID(bytes: [0xcc])

    private func target(_ buildID: BuildID, _ patch: String) -> HotpatchTarget {
        HotpatchTarget(buildID: buildID, pathHint: "/usr/lib/\(buildID)", patchObjectPath: "/store/\(patch)", redirections: [])
    }

    private func level(_ number: Int, baseline: String = "B1", _ targets: [HotpatchTarget]) -> Hotpatch {
        Hotpatch(id: "\(baseline)-hp\(number)", baseline: baseline, level: number, targets: targets)
    }

    /// Which release each object runs, by build-id.
    private func releases(_ fixes: DesiredFixes) -> [BuildID: String] {
        fixes.fixes.mapValues { $0.release?.id ?? "?" }
    }

    @Test func levelNamingOnlyAnotherObject_keepsTheEarlierFixOfTheFirstInForce() {
        let one = level(1, [target(libA, "a1.so")])
        let two = level(2, [target(libB, "b2.so")])

        let fixes = DesiredFixes.cumulative(desired: two, levels: [one, two])

        #expect(releases(fixes) == [libA: "B1-hp1", libB: "B1-hp2"])
        #expect(fixes.fix(for: libA)?.target.patchObjectPath == "/store/a1.so")
        #expect(fixes.fix(for: libA)?.release == FixRelease(id: "B1-hp1", level: 1))
        #expect(fixes.release == two)
    }

    @Test func levelNamingAnObjectAgain_replacesThatObjectsEarlierFix() {
        let levels = [level(1, [target(libA, "a1.so")]), level(2, [target(libB, "b2.so")]), level(3, [target(libA, "a3.so")])]

        let fixes = DesiredFixes.cumulative(desired: levels[2], levels: levels)

        #expect(releases(fixes) == [libA: "B1-hp3", libB: "B1-hp2"])
        #expect(fixes.fix(for: libA)?.target.patchObjectPath == "/store/a3.so")
    }

    @Test func levelsAboveTheDesiredOne_andOtherBaselines_doNotCount() {
        let levels = [level(1, [target(libA, "a1.so")]), level(2, [target(libB, "b2.so")]), level(3, [target(libC, "c3.so")]),
                      level(4, baseline: "B0", [target(libC, "c-old.so")])]

        let fixes = DesiredFixes.cumulative(desired: levels[1], levels: levels)

        #expect(releases(fixes) == [libA: "B1-hp1", libB: "B1-hp2"])
        #expect(fixes.fix(for: libC) == nil)
    }

    @Test func noDesiredLevel_removesEveryFix() {
        let levels = [level(1, [target(libA, "a1.so")]), level(2, [target(libB, "b2.so")])]

        #expect(DesiredFixes.cumulative(desired: nil, levels: levels) == .none)
        #expect(DesiredFixes.none.fixes.isEmpty)
    }

    @Test func skippedLevel_fallsBackToTheNextLowerLevelNamingTheObject() {
        let levels = [level(1, [target(libA, "a1.so")]), level(2, [target(libA, "a2.so"), target(libB, "b2.so")]),
                      level(3, [target(libC, "c3.so")])]

        let fixes = DesiredFixes.cumulative(desired: levels[2], levels: levels, skipping: ["B1-hp2"])

        #expect(releases(fixes) == [libA: "B1-hp1", libC: "B1-hp3"])
    }

    @Test func desiredLevel_countsEvenWhenSkippedOrNotListed() {
        let one = level(1, [target(libA, "a1.so")])
        let two = level(2, [target(libB, "b2.so")])

        let fixes = DesiredFixes.cumulative(desired: two, levels: [one], skipping: ["B1-hp2"])

        #expect(releases(fixes) == [libA: "B1-hp1", libB: "B1-hp2"])
    }

    @Test func releaseNamingAnObjectTwice_countsItsFirstTarget() {
        let one = level(1, [target(libA, "first.so"), target(libA, "second.so")])

        #expect(DesiredFixes.cumulative(desired: one, levels: [one]).fix(for: libA)?.target.patchObjectPath == "/store/first.so")
    }

    @Test func everyTargetOfEveryLevel_isAKnownFixWithItsRelease() {
        let levels = [level(1, [target(libA, "a1.so")]), level(2, [target(libA, "a2.so"), target(libB, "b2.so")])]

        let known = ObjectFix.all(of: levels)

        #expect(known.map(\.target.patchObjectPath) == ["/store/a1.so", "/store/a2.so", "/store/b2.so"])
        #expect(known.map(\.release) == [FixRelease(id: "B1-hp1", level: 1), FixRelease(id: "B1-hp2", level: 2),
                                         FixRelease(id: "B1-hp2", level: 2)])
    }
}
