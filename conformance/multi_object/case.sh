# multi_object: one release fixes the program and its library; the agent applies both in one
# stop (never one without the other) and reverts both. Needs issue 10 section 3.
run() {
    case_init
    cc_lib libmulti.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lmulti
    cc_patch patch_prog.so "$SRC/patch_prog.c"
    cc_patch patch_lib.so "$SRC/patch_lib.c"
    start p ./prog
    expect p UNPATCHED
    publish_two_objects multi_object-1 1
    apply_then_revert p multi_object-1
}

# Several objects in one release: each --target starts a group that owns the --patch, --replace
# and --ref after it (docs/CHANNEL.md).
publish_two_objects() {
    pack hotpatch --channel "$CW/channel" --id "$1" --baseline b1 --level "$2" \
        --target prog --patch patch_prog.so --replace program_part=program_part_fixed \
        --target libmulti.so --patch patch_lib.so --replace library_part=library_part_fixed
    pack publish --channel "$CW/channel" --private-key "$WORK/publisher.key"
}
