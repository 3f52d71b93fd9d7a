// PLACEHOLDER, to be deleted when the generator (Sources/Pack/Generate/PatchGenerator.swift, from
// the generator's branch) is merged: it defines the real `generatePatch(for:)` with this signature.
// It lets the build driver compile and be tested on its own until then.

/// Stands in for the generator: refuses every target.
package func generatePatch(for builds: TargetBuilds) throws(PackError) -> GeneratedPatch {
    throw PackError("hotpatch-pack build cannot generate a patch for \(builds.releasedPath) yet: the generator is not part of this build")
}
