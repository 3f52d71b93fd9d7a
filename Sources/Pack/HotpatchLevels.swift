import Artifact

extension ChannelWorkspace {
    /// Refuses a new hotpatch release (processes or kernel) whose id is malformed or taken, whose
    /// baseline the index does not define, or whose level is not above that baseline's highest.
    func checkNewHotpatch(id: String, baseline: String, level: Int, in index: ChannelIndex) throws {
        try checkNewID(id, in: index)
        try checkBaselineExists(baseline, in: index)
        let previous = index.releases.compactMap { release -> Int? in
            if case let .hotpatch(_, base, level, _, _, _, _) = release, base == baseline { return level } else { return nil }
        }.max()
        if let previous, level <= previous {
            throw PackError("Level \(level) is not above level \(previous), the highest of baseline \(baseline)")
        }
    }
}
