import ArgumentParser
import Artifact

/// The options naming a new hotpatch release, common to `hotpatch`, `build` (processes) and `kernel`.
struct HotpatchLevelOptions: ParsableArguments {
    @Option(help: "The hotpatch's id (letters, digits, '.', '_', '+', '-').")
    var id: String

    @Option(help: "The baseline the hotpatch applies to.")
    var baseline: String

    @Option(help: "Its cumulative level within the baseline, above every earlier level.")
    var level: Int

    func validate() throws {
        guard level >= 1 else { throw ValidationError("--level must be 1 or more") }
    }

    /// The process release these options name, with its text, `--provider` objects and the
    /// `--with-deb` packages it carries.
    func addition(text: ReleaseTextOptions, providers: [String], withDeb: WithDebOptions = WithDebOptions()) -> HotpatchAddition {
        HotpatchAddition(levels: self, text: text, providers: providers, debs: withDeb.debs)
    }

    /// Refuses the release when its id is malformed or taken, its baseline is not in `index`, or
    /// its level is not above that baseline's highest (processes and kernel levels count alike).
    func checkNew(in index: ChannelIndex, workspace: ChannelWorkspace) throws {
        try workspace.checkNewID(id, in: index)
        try workspace.checkBaselineExists(baseline, in: index)
        let previous = index.releases.compactMap { release -> Int? in
            if case let .hotpatch(_, base, level, _, _, _, _, _) = release, base == baseline { return level } else { return nil }
        }.max()
        if let previous, level <= previous {
            throw PackError("Level \(level) is not above level \(previous), the highest of baseline \(baseline)")
        }
    }
}
