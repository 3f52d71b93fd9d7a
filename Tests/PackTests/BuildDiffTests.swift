import Foundation
import Testing
@testable import Pack

/// `hotpatch-pack build`'s diffs: the unified diff parser (diff -u, git diff, new and deleted
/// files, missing final newlines, malformed input named by file and line) and their application
/// to a copy of the source with GNU patch, refused by diff, file and hunk.
@Suite struct BuildDiffTests {
    static let plainDiff = """
        --- src.orig/parse.c\t2025-01-01 10:00:00.000000000 +0000
        +++ src/parse.c\t2025-01-02 10:00:00.000000000 +0000
        @@ -1,4 +1,5 @@
         int parse(const char *text, int length) {
        +    if (length > 64) return -1;
             int sum = 0;
             for (int i = 0; i < length; i++) sum += text[i];
             return sum;
        @@ -10,2 +11,2 @@ int other(void) {
        -    return 1;
        +    return 2;
         }

        """

    static let gitDiff = """
        diff --git a/lib/new.c b/lib/new.c
        new file mode 100644
        index 0000000..3b18e51
        --- /dev/null
        +++ b/lib/new.c
        @@ -0,0 +1,2 @@
        +int added(void) { return 7; }
        +int more(void) { return 8; }
        \\ No newline at end of file
        diff --git a/old.c b/old.c
        deleted file mode 100644
        index 3b18e51..0000000
        --- a/old.c
        +++ /dev/null
        @@ -1 +0,0 @@
        -int gone(void) { return 1; }
        diff --git "a/with space.c" "b/with space.c"
        index 1111111..2222222 100644
        --- "a/with space.c"
        +++ "b/with space.c"
        @@ -1 +1 @@
        -int x = 1;
        +int x = 2;

        """

    @Test func parse_diffU_readsFilesAndHunksWithP1Paths() throws {
        let diff = try UnifiedDiff.parse(Self.plainDiff, path: "fix.diff")
        #expect(diff.files.count == 1)
        let file = try #require(diff.files.first)
        #expect(file.path == "parse.c")
        #expect(!file.isNewFile && !file.isDeletedFile)
        #expect(file.line == 1)
        #expect(file.hunks.map(\.number) == [1, 2])
        #expect(file.hunks.map(\.line) == [3, 9])
        #expect(file.hunks[0].oldStart == 1 && file.hunks[0].oldCount == 4 && file.hunks[0].newStart == 1 && file.hunks[0].newCount == 5)
    }

    @Test func parse_gitDiff_readsNewDeletedAndQuotedFiles() throws {
        let diff = try UnifiedDiff.parse(Self.gitDiff, path: "fix.diff")
        #expect(diff.files.map(\.path) == ["lib/new.c", "old.c", "with space.c"])
        #expect(diff.files.map(\.isNewFile) == [true, false, false])
        #expect(diff.files.map(\.isDeletedFile) == [false, true, false])
        #expect(diff.files[1].hunks[0].oldCount == 1 && diff.files[1].hunks[0].newCount == 0)
    }

    @Test(arguments: [
        ("--- a/x.c\n@@ -1 +1 @@\n-a\n+b\n", "line 1: '---' header without a '+++' line"),
        ("--- a/x.c\n+++ b/x.c\n@@ -1 +1\n-a\n+b\n", "line 3: malformed hunk header '@@ -1 +1'"),
        ("--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\n-b\n", "line 5: hunk #1 of x.c ends early"),
        ("--- a/x.c\n+++ b/x.c\n@@ -1,2 +1,2 @@\n a\n*b\n", "line 5: line in hunk #1 of x.c starts with neither"),
        ("--- a/x.c\n+++ b/x.c\n", "line 1: file x.c has a header but no '@@' hunk"),
        ("--- x.c\n+++ x.c\n@@ -1 +1 @@\n-a\n+b\n", "line 1: path 'x.c' has no directory to strip"),
        ("--- a/../x.c\n+++ b/../x.c\n@@ -1 +1 @@\n-a\n+b\n", "line 1: path 'a/../x.c' climbs out of the source tree"),
        ("just some words\n", "it changes no file"),
    ])
    func parse_malformed_namesTheFileAndLine(text: String, expected: String) {
        #expect {
            try UnifiedDiff.parse(text, path: "bad.diff")
        } throws: { error in
            let message = "\(error)"
            return message.contains("bad.diff") && message.contains(expected)
        }
    }

    @Test func apply_goodDiffs_changeOnlyTheCopyInOrder() throws {
        let scratch = try Scratch()
        try scratch.write("tree/parse.c", "int parse(void) {\n    return 1;\n}\n")
        try scratch.write("fix1.diff", "--- a/parse.c\n+++ b/parse.c\n@@ -1,3 +1,3 @@\n int parse(void) {\n-    return 1;\n+    return 2;\n }\n")
        try scratch.write("fix2.diff", "--- a/parse.c\n+++ b/parse.c\n@@ -1,3 +1,3 @@\n int parse(void) {\n-    return 2;\n+    return 3;\n }\n--- /dev/null\n+++ b/added.c\n@@ -0,0 +1 @@\n+int added(void) { return 4; }\n")
        try SourceTrees.copy(scratch.path + "/tree", to: scratch.path + "/copy")
        let diffs = try ["fix1.diff", "fix2.diff"].map { try UnifiedDiff.load(path: scratch.path + "/" + $0) }
        try SourceTrees.apply(diffs, to: scratch.path + "/copy")
        #expect(try String(contentsOfFile: scratch.path + "/copy/parse.c", encoding: .utf8).contains("return 3;"))
        #expect(FileManager.default.fileExists(atPath: scratch.path + "/copy/added.c"))
        #expect(try String(contentsOfFile: scratch.path + "/tree/parse.c", encoding: .utf8).contains("return 1;"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/copy").sorted() == ["added.c", "parse.c"])
    }

    @Test func apply_hunkThatDoesNotMatch_namesDiffFileAndHunkAndChangesNothing() throws {
        let scratch = try Scratch()
        try scratch.write("tree/parse.c", "int parse(void) {\n    return 1;\n}\nint other(void) {\n    return 5;\n}\n")
        // The first hunk applies; the second expects `return 6`.
        try scratch.write("fix.diff", """
            --- a/parse.c
            +++ b/parse.c
            @@ -1,3 +1,3 @@
             int parse(void) {
            -    return 1;
            +    return 2;
             }
            @@ -4,3 +4,3 @@
             int other(void) {
            -    return 6;
            +    return 7;
             }

            """)
        try SourceTrees.copy(scratch.path + "/tree", to: scratch.path + "/copy")
        let diff = try UnifiedDiff.load(path: scratch.path + "/fix.diff")
        #expect {
            try SourceTrees.apply([diff], to: scratch.path + "/copy")
        } throws: { error in
            let message = "\(error)"
            return message.contains("--diff \(scratch.path)/fix.diff does not apply")
                && message.contains("parse.c: hunk #2 (diff line 8, @@ -4,3 +4,3 @@) does not match the source")
        }
        // The dry run refused it: not even the first hunk was applied, and no .rej/.orig was left.
        let copy = try String(contentsOfFile: scratch.path + "/copy/parse.c", encoding: .utf8)
        #expect(copy.contains("return 1;") && !copy.contains("return 2;"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/copy") == ["parse.c"])
    }

    @Test func apply_diffOfAMissingFile_saysTheFileIsNotInTheSource() throws {
        let scratch = try Scratch()
        try scratch.write("tree/parse.c", "int parse(void) { return 1; }\n")
        try scratch.write("fix.diff", "--- a/nowhere.c\n+++ b/nowhere.c\n@@ -1 +1 @@\n-int a;\n+int b;\n")
        let diff = try UnifiedDiff.load(path: scratch.path + "/fix.diff")
        #expect {
            try SourceTrees.apply([diff], to: scratch.path + "/tree")
        } throws: { error in
            "\(error)".contains("a file the diff changes is not in the source")
        }
    }
}
