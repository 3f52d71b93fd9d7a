import LinuxSystem

/// The kernel's side of live patching as `KernelPatcher` drives it: loading and unloading
/// modules, writing live patch attributes, and letting time pass between two looks at a
/// transition. The system's is the only one the products use; a test puts a simulated kernel
/// here (with `KernelPaths` naming its tree) to test the patcher's decisions without root.
package protocol KernelModuleControl: Sendable {
    /// Loads the module in `file` (finit_module(2)).
    func load(_ file: borrowing OpenFile) throws(SystemError)
    /// Unloads the module `name` without waiting for its users (delete_module(2), O_NONBLOCK).
    func unload(_ name: String) throws(SystemError)
    /// Writes `text` to the sysfs attribute at `path` in one write(2).
    func writeAttribute(_ text: String, to path: String) throws(SystemError)
    /// Lets `microseconds` pass before the patcher looks at a transition again.
    func pause(microseconds: UInt64)
}

/// The running kernel's module loader and sysfs, through LinuxSystem's `KernelModules`.
package struct SystemKernelModuleControl: KernelModuleControl {
    /// The system's loader.
    package init() {}

    package func load(_ file: borrowing OpenFile) throws(SystemError) { try KernelModules.load(file) }
    package func unload(_ name: String) throws(SystemError) { try KernelModules.unload(name) }
    package func writeAttribute(_ text: String, to path: String) throws(SystemError) { try KernelModules.writeAttribute(text, to: path) }
    package func pause(microseconds: UInt64) { Monotonic.sleep(microseconds: microseconds) }
}
