import Artifact
import Foundation

/// What `hotpatch-pack build` prints on stdout: per target, where it was found, whether the
/// rebuild reproduces it, what changed and what the generator did; the refusals; the release
/// written. Text for people, JSON (`--json`, snake_case keys, a stable shape) for programs.
package struct BuildReport: Codable, Sendable, Equatable {
    /// One `--target`.
    package struct Target: Codable, Sendable, Equatable {
        /// The released object, absolute.
        package var released: String
        /// Its build-id.
        package var buildId: String
        /// Its rebuilds, absolute (in the work directory).
        package var original: String
        package var patched: String
        /// Whether the unpatched rebuild is byte-identical to the released object.
        package var reproducible: Bool
        /// Function by function, what changed and what was done about it (refusals included).
        package var changes: [GeneratedChange]
        /// Released function → replacement in the patch object.
        package var replacements: [Replacement]
        /// Target symbols the patch object reaches, by offset.
        package var references: [TargetSymbolReference]
        /// The patch object's path in the channel once the release is written.
        package var patchObject: String?
        /// What the generator noted that is neither a change nor a refusal (a build without DWARF).
        package var notes: [String] = []

        private enum CodingKeys: String, CodingKey {
            case released, buildId, original, patched, reproducible, changes, replacements, references, patchObject, notes
        }

        /// Encodes every field, `patch_object` as null when nothing was written (not left out).
        package func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(released, forKey: .released)
            try container.encode(buildId, forKey: .buildId)
            try container.encode(original, forKey: .original)
            try container.encode(patched, forKey: .patched)
            try container.encode(reproducible, forKey: .reproducible)
            try container.encode(changes, forKey: .changes)
            try container.encode(replacements, forKey: .replacements)
            try container.encode(references, forKey: .references)
            try container.encode(patchObject, forKey: .patchObject)
            try container.encode(notes, forKey: .notes)
        }
    }

    /// One redirection.
    package struct Replacement: Codable, Sendable, Equatable {
        package var symbol: String
        package var replacement: String
    }

    /// The release added to the channel.
    package struct Release: Codable, Sendable, Equatable {
        package var channel: String
        package var id: String
        package var baseline: String
        package var level: Int
    }

    /// One per `--target`, in order.
    package var targets: [Target]
    /// The changes that cannot be hotpatched (every target's); any refusal means no release.
    package var refusals: [GeneratedChange]
    /// The release written, nil when nothing was written.
    package var release: Release?
    /// The work directory when it is kept, else nil (it was removed).
    package var workDirectory: String?

    private enum CodingKeys: String, CodingKey {
        case targets, refusals, release, workDirectory
    }

    /// Encodes every field, `release` and `work_directory` as null when unset (never left out).
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(targets, forKey: .targets)
        try container.encode(refusals, forKey: .refusals)
        try container.encode(release, forKey: .release)
        try container.encode(workDirectory, forKey: .workDirectory)
    }

    /// The report as JSON: snake_case keys, sorted, one line per value.
    package func json() -> String {
        reportJSON(self)
    }

    /// The report as text.
    package func text() -> String {
        var lines: [String] = []
        for target in targets {
            lines.append("\(target.released) (build-id \(target.buildId)):")
            lines.append("  rebuilt as \(target.original) (as released) and \(target.patched) (patched)")
            lines.append(target.reproducible
                ? "  reproducible build: the rebuild is byte-identical to the released object"
                : "  the rebuild is not byte-identical to the released object: functions are matched to the released object")
            lines += target.notes.map { "  note: \($0)" }
            if target.changes.isEmpty { lines.append("  no function changed") }
            for change in target.changes {
                lines.append("  \(change.kind.rawValue): \(change.symbol)" + (change.reason.isEmpty ? "" : ": \(change.reason)"))
            }
            if let patchObject = target.patchObject {
                let redirections = target.replacements.map { "\($0.symbol)→\($0.replacement)" }.joined(separator: ", ")
                lines.append("  patch object \(patchObject): \(redirections)")
            }
        }
        if !refusals.isEmpty {
            lines.append("Refused: \(refusals.count) change\(refusals.count == 1 ? "" : "s") cannot be hotpatched, nothing was written to the channel:")
            lines += refusals.map { "  \($0.object): \($0.symbol): \($0.reason)" }
        }
        if let release {
            lines.append("Added hotpatch \(release.id) (baseline \(release.baseline), level \(release.level)) to \(release.channel); run 'hotpatch-pack publish' to sign")
        }
        if let workDirectory { lines.append("Work directory kept: \(workDirectory)") }
        return lines.joined(separator: "\n")
    }
}

/// A report as the generator's commands print it with `--json`: snake_case keys, sorted, one line
/// per value. Every field of a report is a string, number, bool, array or nil: encoding cannot fail.
func reportJSON(_ report: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(report)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
}
