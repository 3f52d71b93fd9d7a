import Foundation
import LinuxSystem

/// The compiler wrapper `hotpatch-pack build` puts in its builds' environment as `CC` and `CXX`:
/// a shell script per language that runs the real compiler with the build's own arguments plus
/// `-ffunction-sections -fdata-sections` (after them, so a build's `-fno-function-sections` does
/// not undo them; nothing else that changes code generation), and appends one line per object a
/// successful `-c` compile wrote to the compile log: the object, the source, the directory the
/// compiler ran in (tab-separated, as the compiler was given them).
package struct CompilerWrapper: Sendable {
    /// The flags the wrapper adds to every compiler run.
    package static let addedFlags = ["-ffunction-sections", "-fdata-sections"]

    /// The wrapper for C (`CC`).
    package let cc: String
    /// The wrapper for C++ (`CXX`).
    package let cxx: String
    /// Where the wrappers record compiles.
    package let log: String

    /// Writes the two wrappers into `folder`: each wraps the compiler the caller's environment
    /// names (`CC`, `CXX`; split into words as make and the shell split them) or else `cc`, `c++`.
    package static func write(into folder: String, log: String,
                              environment: [String: String] = ProcessInfo.processInfo.environment) throws(PackError) -> CompilerWrapper {
        do throws(SystemError) { try Files.makeDirectories(folder, mode: 0o755) } catch { throw PackError(error) }
        let wrapper = CompilerWrapper(cc: folder + "/cc", cxx: folder + "/c++", log: log)
        for (path, variable, fallback) in [(wrapper.cc, "CC", "cc"), (wrapper.cxx, "CXX", "c++")] {
            let real = environment[variable].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 } ?? fallback
            do throws(SystemError) {
                try Files.writeAtomically(path, bytes: Array(script(real: real, log: log).utf8), mode: 0o755)
            } catch {
                throw PackError("Failed to write the compiler wrapper \(path): \(error)")
            }
        }
        return wrapper
    }

    /// The environment a build runs with: the caller's, with `CC` and `CXX` naming the wrappers.
    package func environment(from base: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        var environment = base
        environment["CC"] = cc
        environment["CXX"] = cxx
        return environment
    }

    /// The wrapper script for the compiler command `real`.
    static func script(real: String, log: String) -> String {
        """
        #!/bin/sh
        # Written by hotpatch-pack build. Runs the real compiler with the build's arguments plus
        # per-function and per-datum sections, and records each object a -c compile writes in the
        # compile log (object, source, directory), which pairs the two builds' objects.
        set -f
        real=\(shellQuoted(real))
        log=\(shellQuoted(log))
        compile=no object= skip=no count=0
        for argument in "$@"; do
            case $skip in
                output) object=$argument; skip=no; continue ;;
                yes) skip=no; continue ;;
            esac
            case $argument in
                -c) compile=yes ;;
                -o) skip=output ;;
                -o*) object=${argument#-o} ;;
                -MF|-MT|-MQ|-x|-include|-imacros|-isystem|-idirafter|-iquote|-iprefix|-iwithprefix|-iwithprefixbefore|-isysroot|-imultilib|-I|-D|-U|-L|-Xlinker|-Xassembler|-Xpreprocessor|-aux-info|-dumpbase|-dumpdir|--param|-T|-u|-z|-e)
                    skip=yes ;;
                -*) ;;
                *.c|*.cc|*.cp|*.cxx|*.cpp|*.CPP|*.c++|*.C|*.i|*.ii|*.s|*.S|*.sx)
                    count=$((count + 1)); eval "source_$count=\\$argument" ;;
            esac
        done
        $real "$@" \(addedFlags.joined(separator: " "))
        status=$?
        if [ "$status" -eq 0 ] && [ "$compile" = yes ]; then
            directory=$(pwd -P)
            index=1
            while [ "$index" -le "$count" ]; do
                eval "source=\\$source_$index"
                written=$object
                if [ -z "$written" ]; then
                    written=${source##*/}
                    written=${written%.*}.o
                fi
                printf '%s\\t%s\\t%s\\n' "$written" "$source" "$directory" >> "$log"
                index=$((index + 1))
            done
        fi
        exit "$status"

        """
    }

    /// `text` as one shell word.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The compiles the log at `log` records whose object lies under `buildRoot` (where the build
    /// ran) and still exists, with their paths moved to `finalRoot` (where the copy lies after the
    /// build); the last compile of an object wins (a configure script may compile a name twice).
    /// An object outside the tree (a configure test in /tmp) is left out.
    package static func compiledObjects(log: String, buildRoot: String, finalRoot: String) throws(PackError) -> [CompiledObject] {
        let text: String
        do throws(SystemError) {
            text = String(decoding: try Files.readIfPresent(log, limit: 256 << 20) ?? [], as: UTF8.self)
        } catch {
            throw PackError("Failed to read the compile log \(log): \(error)")
        }
        var byRelativePath: [String: CompiledObject] = [:]
        var order: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 3 else { continue }
            let object = resolved(fields[0], in: fields[2]), source = resolved(fields[1], in: fields[2])
            guard object.hasPrefix(buildRoot + "/") else { continue }
            let relative = String(object.dropFirst(buildRoot.count + 1))
            let moved = CompiledObject(objectPath: finalRoot + "/" + relative,
                                       sourcePath: source.hasPrefix(buildRoot + "/") ? finalRoot + source.dropFirst(buildRoot.count) : source,
                                       relativePath: relative)
            guard FileManager.default.fileExists(atPath: moved.objectPath) else { continue }
            if byRelativePath.updateValue(moved, forKey: relative) == nil { order.append(relative) }
        }
        return order.compactMap { byRelativePath[$0] }
    }

    /// `path` against `directory`, with `.` and `..` removed.
    static func resolved(_ path: String, in directory: String) -> String {
        URL(fileURLWithPath: path.hasPrefix("/") ? path : directory + "/" + path).standardizedFileURL.path
    }
}
