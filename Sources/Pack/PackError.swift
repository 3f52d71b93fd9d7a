import Artifact
import LinuxSystem

/// Why a hotpatch-pack command failed; printed on stderr with a non-zero exit status.
/// Package access: `hotpatch-pack build`'s generator throws it from `package` functions.
package struct PackError: Error, CustomStringConvertible {
    package let description: String

    package init(_ description: String) { self.description = description }

    /// Wraps a failed system call: its own sentence says what failed, on which file, and why.
    init(_ error: SystemError) { self.description = error.description }

    /// Wraps an artifact error (channel refusals, ELF problems) with what was being done.
    static func wrapping(_ error: any Error, while doing: String) -> PackError {
        PackError("Failed to \(doing): \(error)")
    }
}
