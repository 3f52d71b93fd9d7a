import Artifact

/// The running kernel's fix: a live patch module and the release it comes from.
public struct KernelFix: Hashable, Sendable, CustomStringConvertible {
    /// The module, for one kernel build.
    public var patch: KernelLivePatch
    /// The hotpatch release (id and level) that carries it.
    public var release: FixRelease

    /// `NAME from ID (level N)`.
    public var description: String { "\(patch.livepatchName) from \(release)" }
}

/// What to do about the kernel, given the desired level, the releases and what the kernel holds.
public enum KernelDecision: Hashable, Sendable {
    /// No release has a module for this kernel, and no patch of ours is loaded: the kernel adds nothing.
    case nothingToDo
    /// The desired fix is in force already.
    case inForce(KernelFix)
    /// Load the fix's module; atomic replace then disables every other enabled live patch (`replacing`).
    case apply(KernelFix, replacing: [String])
    /// A transition of one of our patches is under way (e.g. begun before the agent restarted):
    /// follow it to its end.
    case followTransition(KernelFix, patch: String)
    /// Another tool's live patch is in transition; the kernel takes no new patch until it ends.
    case waitForOtherTransition(patch: String)
    /// The desired level has no fix for this kernel: disable and unload these patches of ours.
    case revert([String])
    /// A fix exists for this kernel, but the kernel cannot load modules.
    case notApplicable(KernelFix, KernelUnavailability)
}

/// The pure rules for kernel fixes: levels are cumulative per kernel build-id exactly as they are
/// per object build-id for processes (`DesiredFixes.cumulative`), and what is in force is read
/// from the kernel's own list of live patches, never from saved state.
public enum KernelPlan {
    /// The fix for the kernel with `buildID` at the `desired` level: the module of the highest level
    /// of `desired`'s baseline, at or below `desired.level`, that has an entry for `buildID`, among
    /// `releases`. Levels whose id is in `skipping` (quarantined, held) are passed over, except
    /// `desired` itself. Nil when there is none (or no desired level, or no build-id).
    public static func desiredFix(desired: Hotpatch?, releases: [HotpatchRelease], kernel buildID: BuildID?,
                                  skipping: Set<String> = []) -> KernelFix? {
        guard let desired, let buildID else { return nil }
        let candidates = releases.enumerated()
            .filter { $0.element.hotpatch.baseline == desired.baseline && $0.element.hotpatch.level <= desired.level }
            .filter { $0.element.id == desired.id || !skipping.contains($0.element.id) }
            // Highest level first; between equal levels the desired release, then publication order.
            .sorted { ($0.element.hotpatch.level, $0.element.id == desired.id ? 1 : 0, -$0.offset)
                > ($1.element.hotpatch.level, $1.element.id == desired.id ? 1 : 0, -$1.offset) }
            .map(\.element)
        for release in candidates {
            if let patch = release.kernel.first(where: { $0.buildID == buildID }) {
                return KernelFix(patch: patch, release: FixRelease(id: release.id, level: release.hotpatch.level))
            }
        }
        return nil
    }

    /// Every fix any release has for the kernel with `buildID`, by module name; a name several
    /// levels share (the same module named again) maps to the highest of them.
    public static func knownFixes(releases: [HotpatchRelease], kernel buildID: BuildID?) -> [String: KernelFix] {
        guard let buildID else { return [:] }
        var known: [String: KernelFix] = [:]
        for release in releases {
            for patch in release.kernel where patch.buildID == buildID {
                let fix = KernelFix(patch: patch, release: FixRelease(id: release.id, level: release.hotpatch.level))
                if let earlier = known[patch.livepatchName], earlier.release.level >= fix.release.level { continue }
                known[patch.livepatchName] = fix
            }
        }
        return known
    }

    /// The fix in force in the kernel: a completed live patch whose name is a module of one of
    /// `releases` for this kernel. `preferring` (the desired fix) is reported when its module is the
    /// one in force, so a module several levels share is named by the desired level.
    public static func inForce(releases: [HotpatchRelease], kernel buildID: BuildID?, snapshot: LivePatchSnapshot,
                               preferring: KernelFix? = nil) -> KernelFix? {
        let known = knownFixes(releases: releases, kernel: buildID)
        if let preferring, snapshot.patch(preferring.patch.livepatchName)?.isInForce == true { return preferring }
        return snapshot.patches.filter(\.isInForce).compactMap { known[$0.name] }.max { $0.release.level < $1.release.level }
    }

    /// Modules of ours still loaded with no live patch folder (disabled or replaced): unloading
    /// them tidies up, and a module of the same name cannot load until they are gone.
    public static func leftoverModules(releases: [HotpatchRelease], kernel buildID: BuildID?, snapshot: LivePatchSnapshot) -> [String] {
        knownFixes(releases: releases, kernel: buildID).keys
            .filter { snapshot.loadedModules.contains($0) && snapshot.patch($0) == nil }
            .sorted()
    }

    /// What to do about the kernel: see `KernelDecision`. Pure: decided from its arguments alone.
    public static func decide(desired: Hotpatch?, releases: [HotpatchRelease], skipping: Set<String> = [],
                              kernel: RunningKernel, snapshot: LivePatchSnapshot) -> KernelDecision {
        let known = knownFixes(releases: releases, kernel: kernel.buildID)
        let ours = snapshot.patches.filter { known[$0.name] != nil }
        guard let fix = desiredFix(desired: desired, releases: releases, kernel: kernel.buildID, skipping: skipping) else {
            return ours.isEmpty ? .nothingToDo : .revert(ours.map(\.name))
        }
        let name = fix.patch.livepatchName
        // In force first: a host that switches module loading off once its modules are loaded
        // (modules_disabled) keeps the fix it has.
        if snapshot.patch(name)?.isInForce == true, snapshot.transition == nil { return .inForce(fix) }
        if let reason = kernel.unavailability { return .notApplicable(fix, reason) }
        if let transition = snapshot.transition {
            guard let ourFix = known[transition.name] else { return .waitForOtherTransition(patch: transition.name) }
            return .followTransition(transition.name == name ? fix : ourFix, patch: transition.name)
        }
        return .apply(fix, replacing: snapshot.patches.filter { $0.enabled && $0.name != name }.map(\.name))
    }
}
