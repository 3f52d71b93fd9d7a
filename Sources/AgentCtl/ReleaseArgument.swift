import ArgumentParser
import Foundation

/// The release id that `apply` and `revert` take, validated once.
struct ReleaseArgument: ParsableArguments {
    @Argument(help: "The release id, as `agentctl status` or `agentctl history` shows it.")
    var id: String

    func validate() throws {
        guard !id.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("the release id must not be empty")
        }
    }
}
