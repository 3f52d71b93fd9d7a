# buildid_mismatch: a hotpatch built for one build of a library is never applied to another build
# (same source, same code, another build-id): that process stays unpatched and the agent does not
# count it, while a process of the right build is patched by the same run.
run() {
    case_init
    mkdir -p right other
    cc_lib right/libbuildid.so "$SRC/lib.c" -Wl,--build-id=0x00c0ffee00c0ffee00c0ffee00c0ffee00000001
    cc_lib other/libbuildid.so "$SRC/lib.c" -Wl,--build-id=0x00c0ffee00c0ffee00c0ffee00c0ffee00000002
    cc_prog right/prog "$SRC/prog.c" -Lright -lbuildid
    cc_prog other/prog "$SRC/prog.c" -Lother -lbuildid
    cc_patch patch.so "$SRC/patch.c"
    publish_hotpatch buildid_mismatch-1 1 right/libbuildid.so patch.so --replace answer=answer_fixed
    # Only the other build runs: nothing applies, the host is up to date.
    start other ./other/prog
    expect other UNPATCHED
    apply_once
    summary_says "0 patched, 0 pending, 0 unpatchable"
    stays other UNPATCHED 0.5
    start right ./right/prog
    expect right UNPATCHED
    apply_once
    summary_says "1 patched, 0 pending, 0 unpatchable"
    expect right PATCHED
    stays other UNPATCHED 0.5
    revert_via_daemon buildid_mismatch-1
    expect right UNPATCHED
    ctl processes --json
    grep -q "\"pid\" : $PID_other\b" <<<"$CTL_OUTPUT" && fail "agentctl processes lists the other build's process $PID_other"
    daemon_stop
}
