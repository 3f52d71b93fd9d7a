import Foundation
import LinuxSystem
import Testing
@testable import Artifact
@testable import Pack

/// `hotpatch-pack build`'s driver on a tiny real make project: the source copied twice, the fix
/// applied to one copy, both built through the compiler wrapper (every object recorded, compiled
/// with per-function sections), each target found by the location rule, and the failures (a
/// Makefile that bypasses CC, a failing build, a missing or ambiguous target) refused clearly.
@Suite struct BuildDriverTests {
    /// A shared library from two C files, the Makefile taking CC from the environment.
    static let makefile = """
        CFLAGS = -O2 -g -fPIC
        libdemo.so: demo.o util.o
        \t$(CC) -shared -Wl,--build-id -Wl,-soname,libdemo.so.1 -o $@ demo.o util.o

        """
    static let demo = """
        int scale(int x);
        int parse(const char *text, int length) {
            int sum = 0;
            for (int i = 0; i < length; i++) sum += text[i];
            return scale(sum);
        }

        """
    static let util = "int scale(int x) { return x * 3; }\n"
    static let fix = """
        --- a/demo.c
        +++ b/demo.c
        @@ -1,5 +1,6 @@
         int scale(int x);
         int parse(const char *text, int length) {
        +    if (length > 64) return -1;
             int sum = 0;
             for (int i = 0; i < length; i++) sum += text[i];
             return scale(sum);

        """

    /// A scratch folder with the project in `source/`, the fix in `fix.diff`, and the project
    /// built as "released" in `released/` (a plain build without the wrapper).
    func project(makefile: String = makefile) throws -> Scratch {
        let scratch = try Scratch()
        try scratch.write("source/Makefile", makefile)
        try scratch.write("source/demo.c", Self.demo)
        try scratch.write("source/util.c", Self.util)
        try scratch.write("fix.diff", Self.fix)
        try Shell.sh("cp -a source released-build && make -s -C released-build CC=cc && mkdir released && cp released-build/libdemo.so released/", in: scratch.path)
        return scratch
    }

    func request(_ scratch: Scratch, build: String = "make", target: String = "released/libdemo.so", keepWork: String? = nil) -> BuildRequest {
        BuildRequest(source: scratch.path + "/source", diffs: [scratch.path + "/fix.diff"], command: build,
                     targets: [scratch.path + "/" + target], debugFiles: [], keepWork: keepWork.map { scratch.path + "/" + $0 })
    }

    @Test func prepare_makeProject_buildsBothCopiesThroughTheWrapperWithFunctionSections() throws {
        let scratch = try project()
        let prepared = try BuildDriver.prepare(request(scratch, keepWork: "work"))
        defer { prepared.work.remove() }
        let work = prepared.work.root
        #expect(prepared.original.root == work + "/original" && prepared.patched.root == work + "/patched")
        for build in [prepared.original, prepared.patched] {
            #expect(build.compiledObjects.map(\.relativePath).sorted() == ["demo.o", "util.o"])
            for object in build.compiledObjects {
                #expect(object.objectPath == build.root + "/" + object.relativePath)
                #expect(object.sourcePath == build.root + "/" + object.relativePath.replacingOccurrences(of: ".o", with: ".c"))
                let elf = try ELFFile.load(path: object.objectPath)
                let function = object.relativePath == "demo.o" ? "parse" : "scale"
                #expect(elf.section(named: ".text.\(function)") != nil, "\(object.objectPath) has no .text.\(function)")
            }
        }
        // The fix is in the patched copy only, and the source is untouched.
        #expect(try String(contentsOfFile: work + "/patched/demo.c", encoding: .utf8).contains("length > 64"))
        #expect(!(try String(contentsOfFile: work + "/original/demo.c", encoding: .utf8)).contains("length > 64"))
        #expect(!(try String(contentsOfFile: scratch.path + "/source/demo.c", encoding: .utf8)).contains("length > 64"))
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/source/demo.o"))

        let target = try #require(prepared.targets.first)
        #expect(target.builds.originalObjectPath == work + "/original/libdemo.so")
        #expect(target.builds.patchedObjectPath == work + "/patched/libdemo.so")
        #expect(target.builds.releasedPath == scratch.path + "/released/libdemo.so")
        #expect(FileManager.default.fileExists(atPath: target.builds.workDirectory))
        // The released build had no -ffunction-sections: not the same bytes.
        #expect(!target.isReproducible)
    }

    @Test func prepare_rebuildAtTheSamePath_isReportedReproducible() throws {
        let scratch = try project()
        let first = try BuildDriver.prepare(request(scratch, keepWork: "work"))
        try Shell.sh("cp work/original/libdemo.so released/libdemo.so && rm -rf work", in: scratch.path)
        let second = try BuildDriver.prepare(request(scratch, keepWork: "work"))
        defer { second.work.remove() }
        #expect(first.work.root == second.work.root)
        #expect(second.targets[0].isReproducible)
    }

    @Test func prepare_temporaryWorkDirectory_isRemovedByTheCaller() throws {
        let scratch = try project()
        let prepared = try BuildDriver.prepare(request(scratch))
        #expect(!prepared.work.isKept)
        #expect(FileManager.default.fileExists(atPath: prepared.work.root + "/patched/libdemo.so"))
        prepared.work.remove()
        #expect(!FileManager.default.fileExists(atPath: prepared.work.root))
    }

    @Test func prepare_makefileThatSetsCC_isRefusedUnlessCCIsPassedToMake() throws {
        let scratch = try project(makefile: "CC = cc\n" + Self.makefile)
        #expect {
            try BuildDriver.prepare(request(scratch))
        } throws: { error in
            "\(error)".contains("compiled nothing through the compiler wrapper") && "\(error)".contains(#"make CC="$CC""#)
        }
        let prepared = try BuildDriver.prepare(request(scratch, build: #"make CC="$CC" CXX="$CXX""#))
        defer { prepared.work.remove() }
        #expect(prepared.patched.compiledObjects.count == 2)
    }

    @Test func prepare_failingBuild_givesStatusAndLastLinesAndKeepsTheLog() throws {
        let scratch = try project()
        #expect {
            try BuildDriver.prepare(request(scratch, build: "for i in $(seq 1 30); do echo line $i; done; echo broken >&2; exit 3", keepWork: "work"))
        } throws: { error in
            let message = "\(error)"
            return message.contains("The build of the source as released failed with exit status 3")
                && message.contains("line 30\nbroken") && message.contains("line 12\n") && !message.contains("line 11\n")
                && message.contains(scratch.path + "/work/original-build.log")
        }
        #expect(try String(contentsOfFile: scratch.path + "/work/original-build.log", encoding: .utf8).contains("line 1\n"))
    }

    @Test func prepare_targetNotBuilt_listsWhatTheBuildMade() throws {
        let scratch = try project()
        // Another library (its own SONAME), which the build does not make.
        try Shell.sh("cc -shared -fPIC -Wl,--build-id -Wl,-soname,libother.so.1 -o released/libother.so source/util.c", in: scratch.path)
        #expect {
            try BuildDriver.prepare(request(scratch, target: "released/libother.so"))
        } throws: { error in
            let message = "\(error)"
            return message.contains("has no ELF file named libother.so nor with DT_SONAME libother.so.1")
                && message.contains("does --build build it?") && message.contains("Its ELF files: libdemo.so")
        }
    }

    @Test func prepare_targetBuiltTwice_isAmbiguous() throws {
        let scratch = try project(makefile: Self.makefile + "\tmkdir -p copy && cp libdemo.so copy/\n")
        #expect {
            try BuildDriver.prepare(request(scratch))
        } throws: { error in
            "\(error)".contains("has 2 ELF files named libdemo.so: copy/libdemo.so, libdemo.so")
        }
    }

    @Test func prepare_targetNamedDifferently_isFoundBySoname() throws {
        let scratch = try project()
        try Shell.sh("mv released/libdemo.so released/libdemo.so.1.2.3", in: scratch.path)
        let prepared = try BuildDriver.prepare(request(scratch, target: "released/libdemo.so.1.2.3"))
        defer { prepared.work.remove() }
        #expect(prepared.targets[0].builds.originalObjectPath == prepared.work.root + "/original/libdemo.so")
    }

    @Test func prepare_diffThatDoesNotApply_namesTheHunkBeforeAnyBuild() throws {
        let scratch = try project()
        try scratch.write("fix.diff", Self.fix.replacingOccurrences(of: " int sum = 0;", with: " long sum = 0;"))
        #expect {
            try BuildDriver.prepare(request(scratch, keepWork: nil))
        } throws: { error in
            "\(error)".contains("demo.c: hunk #1 (diff line 3, @@ -1,5 +1,6 @@) does not match the source")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/source/demo.c.orig"))
    }

    @Test func workDirectory_insideTheSource_isRefused() throws {
        let scratch = try project()
        #expect {
            try BuildDriver.prepare(request(scratch, keepWork: "source/work"))
        } throws: { error in
            "\(error)".contains("lies inside --source")
        }
    }

    @Test func compilerWrapper_recordsImplicitOutputAndWrapsTheCallersCC() throws {
        let scratch = try Scratch()
        try scratch.write("src/one.c", "int one(void) { return 1; }\n")
        // The caller's CC, with an argument of its own: the wrapper runs it, split into words.
        let wrapper = try CompilerWrapper.write(into: scratch.path + "/wrapper", log: scratch.path + "/compiles.log",
                                                environment: ["CC": "cc -DFROM_CALLER"])
        try Shell.sh("cd src && \(wrapper.cc) -O2 -c one.c && \(wrapper.cc) -O2 -o ../prog.o -c ../src/one.c && \(wrapper.cc) -E one.c >/dev/null", in: scratch.path)
        let real = try Files.realPath(scratch.path)
        let objects = try CompilerWrapper.compiledObjects(log: scratch.path + "/compiles.log", buildRoot: real, finalRoot: real)
        #expect(objects.map(\.relativePath) == ["src/one.o", "prog.o"])
        #expect(objects.allSatisfy { $0.sourcePath == real + "/src/one.c" })
        #expect(try ELFFile.load(path: scratch.path + "/src/one.o").section(named: ".text.one") != nil)
        #expect(try String(contentsOfFile: wrapper.cc, encoding: .utf8).contains("real='cc -DFROM_CALLER'"))
    }
}
