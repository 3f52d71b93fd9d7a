import Foundation

/// What `hotpatch-pack build-deb` prints on stdout: the source package and version, the shipped
/// packages and their objects (host path, build-id, reproducible or not, debug file), each step's
/// time, then `hotpatch-pack build`'s report (targets, changes, refusals, release). JSON (`--json`)
/// has `build`'s keys at the top level plus `source_package`, `version`, `shipped`, `steps`.
package struct DebianBuildReport: Encodable, Sendable {
    /// The source package and its version as shipped.
    package var sourcePackage: String
    package var version: String
    /// The shipped packages, with the packages skipped (no ELF object) and why.
    package var shipped: [ShippedPackage]
    /// Each step, timed, in order.
    package var steps: [DebianBuildStep]
    /// The generator's report (nil when it did not run).
    package var build: BuildReport?
    /// The kept work directory, nil when it was temporary.
    package var workDirectory: String?

    private enum CodingKeys: String, CodingKey {
        case sourcePackage, version, shipped, steps, workDirectory
    }

    /// Encodes `build`'s fields (`targets`, `refusals`, `release`) and its own.
    package func encode(to encoder: any Encoder) throws {
        try (build ?? BuildReport(targets: [], refusals: [], release: nil, workDirectory: nil)).encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sourcePackage, forKey: .sourcePackage)
        try container.encode(version, forKey: .version)
        try container.encode(shipped, forKey: .shipped)
        try container.encode(steps, forKey: .steps)
        try container.encode(workDirectory, forKey: .workDirectory)
    }

    /// The report as JSON: snake_case keys, sorted.
    package func json() -> String {
        reportJSON(self)
    }

    /// The report as text.
    package func text() -> String {
        var lines = ["Source package \(sourcePackage) \(version)"]
        for package in shipped {
            if let skipped = package.skipped {
                lines.append("  \(package.name): skipped: \(skipped)")
                continue
            }
            lines.append("  \(package.name) (\(package.deb)):")
            for object in package.objects {
                var line = "    \(object.path) (build-id \(object.buildId)): "
                line += object.reproducible ? "reproducible (the package's own build makes it)" : "not reproduced by the package's own build"
                if let debugFile = object.debugFile { line += "; debug file \(debugFile)" }
                if let skipped = object.skipped { line += "; skipped: \(skipped)" }
                lines.append(line)
            }
        }
        lines.append("Steps: " + steps.map { "\($0.name) \(String(format: "%.1f", $0.seconds)) s\($0.reused ? " (reused)" : "")" }.joined(separator: ", "))
        if let build {
            var generated = build
            generated.workDirectory = nil
            let text = generated.text()
            if !text.isEmpty { lines.append(text) }
        }
        if let workDirectory { lines.append("Work directory kept: \(workDirectory)") }
        return lines.joined(separator: "\n")
    }
}
