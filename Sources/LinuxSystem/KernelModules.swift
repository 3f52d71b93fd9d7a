import Glibc

/// The kernel's module loader and its identity: `finit_module`, `delete_module`, `uname` and the
/// writes to sysfs attributes a live patch is driven through, each failing as a `SystemError`
/// that carries the kernel's errno (ENOEXEC, EKEYREJECTED, EPERM, EEXIST, …).
package enum KernelModules {
    /// Loads the kernel module in `file` with module parameters `parameters`.
    /// The corresponding system call is finit_module(2); the kernel reads the module from the
    /// descriptor, so what it loads is the file that was opened, whatever its path names later.
    package static func load(_ file: borrowing OpenFile, parameters: String = "") throws(SystemError) {
        let descriptor = Int(file.raw)
        try SystemCall.run("finit_module", file.path) {
            parameters.withCString { rawSystemCall(finitModuleNumber, descriptor, Int(bitPattern: $0), 0) }
        }
    }

    /// Unloads the module called `name` without waiting for its users to go (`O_NONBLOCK`, as
    /// rmmod does): EWOULDBLOCK/EBUSY when it is in use, ENOENT when it is not loaded.
    /// The corresponding system call is delete_module(2).
    package static func unload(_ name: String) throws(SystemError) {
        try SystemCall.run("delete_module", name) {
            name.withCString { rawSystemCall(deleteModuleNumber, Int(bitPattern: $0), Int(O_NONBLOCK), 0) }
        }
    }

    /// The running kernel's release, as `uname -r` prints it. uname(2).
    package static func release() throws(SystemError) -> String {
        var names = utsname()
        try SystemCall.run("uname", "the running kernel") { uname(&names) }
        return withUnsafeBytes(of: names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Writes `text` to the sysfs attribute at `path` in one write(2), as sysfs requires.
    package static func writeAttribute(_ text: String, to path: String) throws(SystemError) {
        let file = try OpenFile(path: path, flags: O_WRONLY)
        try file.write(Array(text.utf8))
    }

    // glibc declares no wrapper for finit_module, and Swift cannot call the variadic syscall(2):
    // this binds glibc's syscall symbol with a fixed number of integer arguments, which its
    // assembly entry passes on to the kernel unchanged.
    #if arch(x86_64)
    private static let finitModuleNumber = 313
    private static let deleteModuleNumber = 176
    #elseif arch(arm64)
    private static let finitModuleNumber = 273
    private static let deleteModuleNumber = 106
    #endif
}

@_silgen_name("syscall")
private func rawSystemCall(_ number: Int, _ first: Int, _ second: Int, _ third: Int) -> Int
