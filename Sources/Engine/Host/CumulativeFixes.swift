import Artifact

/// The release a fix comes from: its id and its level.
public struct FixRelease: Hashable, Sendable, CustomStringConvertible {
    /// The hotpatch's release id.
    public var id: String
    /// Its cumulative level within its baseline.
    public var level: Int

    /// Names one release.
    public init(id: String, level: Int) {
        self.id = id
        self.level = level
    }

    /// `ID (level N)`.
    public var description: String { "\(id) (level \(level))" }
}

/// One object's fix: the target (what to redirect in that object) and the release it comes from.
public struct ObjectFix: Hashable, Sendable {
    /// What to redirect, in the object with the target's build-id.
    public var target: HotpatchTarget
    /// The release it belongs to; nil for a target handed to the `Patcher` directly.
    public var release: FixRelease?

    /// Describes one object's fix.
    public init(target: HotpatchTarget, release: FixRelease?) {
        self.target = target
        self.release = release
    }

    /// Every target of `hotpatches`, each with its release.
    public static func all(of hotpatches: [Hotpatch]) -> [ObjectFix] {
        hotpatches.flatMap { hotpatch in
            hotpatch.targets.map { ObjectFix(target: $0, release: FixRelease(id: hotpatch.id, level: hotpatch.level)) }
        }
    }
}

/// What every targeted object should run when the host is at one desired hotpatch level: levels
/// are cumulative per object, so each object runs the fix of the highest level, up to the desired
/// one, that names it (a level naming an object replaces that object's earlier fix; a level that
/// does not name it keeps the earlier fix in force). Pure: decided from the releases alone.
public struct DesiredFixes: Hashable, Sendable {
    /// The desired level (nil: no hotpatch at all, every fix removed).
    public var release: Hotpatch?
    /// The fix each object runs, by the object's build-id; an object not listed runs its own code.
    public var fixes: [BuildID: ObjectFix]

    /// Describes a desired state directly.
    public init(release: Hotpatch?, fixes: [BuildID: ObjectFix]) {
        self.release = release
        self.fixes = fixes
    }

    /// No hotpatch: every object runs its own code again (revert to level 0).
    public static let none = DesiredFixes(release: nil, fixes: [:])

    /// The fixes in force at `desired`: for each object, the target of the highest level of
    /// `desired`'s baseline, at or below `desired.level`, that names the object's build-id, among
    /// `levels` (any order, other baselines ignored; `desired` counts whether or not it is listed).
    /// Levels whose id is in `skipping` (quarantined, held) are passed over, so an object falls back
    /// to the fix of the next lower level that names it, or to none. When one release names a
    /// build-id twice, its first target counts (`hotpatch-pack` refuses to write such a release).
    public static func cumulative(desired: Hotpatch?, levels: [Hotpatch], skipping: Set<String> = []) -> DesiredFixes {
        guard let desired else { return .none }
        let candidates = ([desired] + levels.filter { $0.id != desired.id })
            .filter { $0.baseline == desired.baseline && $0.level <= desired.level }
            .filter { $0.id == desired.id || !skipping.contains($0.id) }
            .enumerated()
            // Highest level first; between equal levels the desired release, then publication order.
            .sorted { ($0.element.level, -$0.offset) > ($1.element.level, -$1.offset) }
            .map(\.element)
        var fixes: [BuildID: ObjectFix] = [:]
        for hotpatch in candidates {
            for target in hotpatch.targets where fixes[target.buildID] == nil {
                fixes[target.buildID] = ObjectFix(target: target, release: FixRelease(id: hotpatch.id, level: hotpatch.level))
            }
        }
        return DesiredFixes(release: desired, fixes: fixes)
    }

    /// The fix of the object with `buildID`, if it has one.
    public func fix(for buildID: BuildID?) -> ObjectFix? { buildID.flatMap { fixes[$0] } }
}
