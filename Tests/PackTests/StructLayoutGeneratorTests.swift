@testable import Pack
import Testing

/// The generator's structure layout rule: a changed layout that the running target meets in the
/// old layout is refused, naming the structure, what changed, and who holds it; one that only the
/// changed functions' own locals use is patched.
@Suite(.serialized) struct StructLayoutGeneratorTests {
    static let unchangedUser = """
        int total(const struct item *it) { return it->count + it->weight; }

        """

    /// A one-file case compiled with -g.
    static func withDWARF(original: String, patched: String) throws -> GeneratorCase {
        try GeneratorCase(files: ["lib.c": (original, patched)], flags: "-g")
    }

    @Test func memberAppended_toAStructAnUnchangedFunctionUses_isRefused_namingTheStructAndTheFunction() throws {
        let fixture = try GeneratorCase(
            files: [
                "lib.c": ("struct item { int count; int weight; };\nint bump(struct item *it) { it->count++; return it->count; }\n" + Self.unchangedUser,
                          "struct item { int count; int weight; int flags; };\nint bump(struct item *it) { it->count++; it->flags = 1; return it->count; }\n" + Self.unchangedUser),
            ], flags: "-g")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("struct item: its layout changed (size 8 → 12 bytes; member flags added)"), "\(refusal)")
        #expect(refusal.contains("unchanged function total (lib.o) still uses the old layout"), "\(refusal)")
        #expect(refusal.contains("ship the fix as a `fix`"), "\(refusal)")
    }

    @Test func changedLayout_ofAStructInAHeaderUsedByAnUntouchedFile_isRefused_namingThatFile() throws {
        let header = (old: "struct pair { int a; int b; };\n", new: "struct pair { long a; int b; };\n")
        let user = "int sum(struct pair *p) { return (int)p->a + p->b; }\n"
        let holder = "static struct pair stored;\nstruct pair *slot(void) { return &stored; }\n"
        let fixture = try GeneratorCase(
            files: [
                "a.c": (header.old + user, header.new + user),
                "b.c": (header.old + holder, header.new + holder),
            ], flags: "-g")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("struct pair: its layout changed (size 8 → 16 bytes; member a's type changed from int to long"), "\(refusal)")
    }

    @Test func structReachedThroughAGlobalPointer_isRefused_evenWhenEveryUserChanged() throws {
        let fixture = try Self.withDWARF(
            original: "struct state { int level; };\nstruct state *current;\nint level(void) { return current ? current->level : -1; }\n",
            patched: "struct state { int pad; int level; };\nstruct state *current;\nint level(void) { return current ? current->level : -1; }\n")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("struct state: its layout changed"), "\(refusal)")
        #expect(refusal.contains("variable current (lib.o) holds or points to it"), "\(refusal)")
    }

    @Test func changedLayout_ofAStructOnlyTheChangedFunctionsLocalsUse_isPatched_andRunsLive() throws {
        let fixture = try Self.withDWARF(
            original: """
                struct window { int low; int high; };
                int clamp_to_window(int x) { struct window w = {0, 100}; return x < w.low ? w.low : x > w.high ? w.high : x; }

                """,
            patched: """
                struct window { int low; int high; int step; };
                int clamp_to_window(int x) { struct window w = {0, 50, 1}; return x < w.low ? w.low : x > w.high ? w.high : x + w.step - 1; }

                """)
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["clamp_to_window"])
        let program = try fixture.program(calling: "clamp_to_window(70)", declaring: "int clamp_to_window(int)")
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=70", after: "value=50")
    }

    @Test func unchangedLayout_withChangedCode_isNotRefused() throws {
        let fixture = try Self.withDWARF(
            original: "struct item { int count; int weight; };\nint bump(struct item *it) { it->count++; return it->count; }\n" + Self.unchangedUser,
            patched: "struct item { int count; int weight; };\nint bump(struct item *it) { if (it->count < 1000) it->count++; return it->count; }\n" + Self.unchangedUser)
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["bump"])
    }

    @Test func structsPointingAtEachOther_eachReachesTheOther_whicheverIsWalkedFirst() throws {
        let fixture = try Self.withDWARF(
            original: """
                struct parent; struct child { struct parent *up; int n; };
                struct parent { struct child *first; int x; };
                int from_parent(struct parent *p) { return p->x; }
                int from_child(struct child *c) { return c->up->x; }

                """,
            patched: "int unused;\n")
        let layouts = try StructLayouts.read(path: fixture.path + "/orig/lib.o")
        #expect(layouts.functions["from_parent"]?["struct child"] == .shared)
        #expect(layouts.functions["from_child"]?["struct parent"] == .shared, "\(layouts.functions)")
    }

    @Test func layoutsRead_recordMembersOffsetsAndWhoReachesThem() throws {
        let fixture = try Self.withDWARF(
            original: """
                typedef struct { unsigned flag : 1; unsigned rest : 7; char name[12]; } tag_t;
                struct node { struct node *next; tag_t tag; };
                static struct node *head;
                int walk(void) { int n = 0; for (struct node *p = head; p; p = p->next) n += p->tag.flag; return n; }
                int local_only(int x) { tag_t t = { 1, 2, "x" }; volatile tag_t *v = &t; return x + v->rest; }

                """,
            patched: "int unused;\n")
        let layouts = try StructLayouts.read(path: fixture.path + "/orig/lib.o")
        let tag = try #require(layouts.layouts["tag_t"])
        #expect(tag.size == 13 || tag.size == 16, "\(tag)")
        #expect(tag.members.map(\.name) == ["flag", "rest", "name"])
        #expect(tag.members.map(\.bitSize) == [1, 7, -1])
        #expect(tag.members.last?.type == "char[12]")
        let node = try #require(layouts.layouts["struct node"])
        #expect(node.members.map(\.type) == ["struct node *", "tag_t"])
        #expect(layouts.variables["head"] == ["struct node", "tag_t"])
        #expect(layouts.functions["walk"]?["struct node"] == .shared)
        #expect(layouts.functions["local_only"]?["tag_t"] == .shared)  // reached through the pointer v
    }
}
