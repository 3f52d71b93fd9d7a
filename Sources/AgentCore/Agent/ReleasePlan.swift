import Artifact
import Engine

/// What the channel asks of this host, decided from the verified releases and the saved state
/// alone: which hotpatch level should run, and which baseline or fixes must be installed.
/// Pure, so every rule of DESIGN §1 is tested without root.
public struct ReleasePlan: Sendable, Equatable {
    /// The hotpatch every process should run (nil: none).
    public var desired: Hotpatch?
    /// What each object runs at that level: the fix of the highest level up to `desired` that
    /// names it, quarantined and held levels passed over (levels are cumulative per object).
    public var fixes: DesiredFixes
    /// Levels of the active baseline skipped because quarantined or held, with why.
    public var skipped: [String: String]
    /// A newer baseline to install (it then waits for a reboot).
    public var baselineToInstall: String?
    /// Fixes of the active baseline not installed yet.
    public var fixesToInstall: [String]

    /// Decides the plan. `releases` are in publication order; baselines are ordered by publication,
    /// the last published being the newest.
    public static func decide(releases: [ChannelRelease], activeBaseline: String?, installed: Set<String>,
                              pendingReboot: Set<String>, quarantined: Set<String>, held: Set<String>,
                              enrolled: Bool) -> ReleasePlan {
        let baselines = releases.compactMap { release -> BaselineRelease? in
            if case let .baseline(baseline) = release { return baseline }
            return nil
        }
        var plan = ReleasePlan(desired: nil, fixes: .none, skipped: [:], baselineToInstall: nil, fixesToInstall: [])
        // A newer baseline than the active one (or any, when none is active): install the newest
        // only — baselines are cumulative.
        let activeIndex = activeBaseline.flatMap { id in baselines.firstIndex { $0.id == id } }
        if let newest = baselines.last, newest.id != activeBaseline,
           activeIndex.map({ $0 < baselines.count - 1 }) ?? true,
           !installed.contains(newest.id), !pendingReboot.contains(newest.id) {
            plan.baselineToInstall = newest.id
        }
        guard let activeBaseline else { return plan }
        for release in releases {
            if case let .fix(fix) = release, fix.baseline == activeBaseline,
               !installed.contains(fix.id), !pendingReboot.contains(fix.id) {
                plan.fixesToInstall.append(fix.id)
            }
        }
        guard enrolled else { return plan }
        let levels = releases.compactMap { release -> Hotpatch? in
            if case let .hotpatch(hotpatch) = release, hotpatch.hotpatch.baseline == activeBaseline { return hotpatch.hotpatch }
            return nil
        }.sorted { $0.level > $1.level }
        for hotpatch in levels {
            if quarantined.contains(hotpatch.id) {
                plan.skipped[hotpatch.id] = "quarantined"
                continue
            }
            if held.contains(hotpatch.id) {
                plan.skipped[hotpatch.id] = "held by an administrator"
                continue
            }
            plan.desired = hotpatch
            break
        }
        plan.fixes = .cumulative(desired: plan.desired, levels: levels, skipping: quarantined.union(held))
        return plan
    }

    /// The baseline to adopt on first start without a reboot: the newest whose files all match the
    /// disk (a baseline with no files matches).
    public static func baselineToAdopt(_ baselines: [BaselineRelease], matches: (BaselineRelease) -> Bool) -> String? {
        baselines.reversed().first(where: matches)?.id
    }
}
