import Glibc

/// The one choke point through which the package makes system calls: it turns `-1`/errno into a
/// `SystemError` naming the call and its subject, and retries `EINTR`.
package enum SystemCall {
    /// Runs `body` until it does not fail with `EINTR`; a result of -1 becomes a typed error.
    @discardableResult
    package static func run<Result: BinaryInteger>(
        _ name: StaticString, _ subject: @autoclosure () -> String, _ body: () -> Result
    ) throws(SystemError) -> Result {
        while true {
            let result = body()
            if result != -1 { return result }
            let number = Glibc.errno
            if number == EINTR { continue }
            throw SystemError(call: "\(name)", errno: number, subject: subject())
        }
    }
}
