# levels_per_object: levels are cumulative per object. Level 1 fixes the library; level 2 names
# only the program, so the library's fix of level 1 stays in force beside it (both run, and the
# process counts as patched); reverting level 2 leaves level 1's, reverting that leaves none.
# Needs issue 10 section 3 (today a level replaces every earlier fix, whatever object it names).
run() {
    case_init
    cc_lib libperobject.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lperobject
    cc_patch patch_lib.so "$SRC/patch_lib.c"
    cc_patch patch_prog.so "$SRC/patch_prog.c"
    start p ./prog
    expect p UNPATCHED
    publish_hotpatch levels_per_object-1 1 libperobject.so patch_lib.so --replace library_part=library_part_fixed
    apply_once
    expect p "PATCHED library"
    publish_hotpatch levels_per_object-2 2 prog patch_prog.so --replace program_part=program_part_fixed
    apply_once
    summary_says "1 patched, 0 pending, 0 unpatchable"
    expect p "PATCHED both"
    revert_via_daemon levels_per_object-2
    expect p "PATCHED library"
    ctl revert levels_per_object-1
    expect p UNPATCHED
    daemon_stop
}
