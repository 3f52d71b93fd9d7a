# levels: cumulative levels 1 -> 2 -> 3 applied one after another, each replacing the last in one
# stop; then reverted level by level through the daemon (3 -> 2 -> 1 -> none).
run() {
    case_init
    cc_lib liblevels.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -llevels
    start p ./prog
    expect p UNPATCHED
    local n
    for n in 1 2 3; do
        cc_patch "patch$n.so" "$SRC/patch$n.c"
        publish_hotpatch "levels-$n" "$n" liblevels.so "patch$n.so" --replace "level=level_$n"
        apply_once
        expect p "PATCHED $n"
    done
    revert_via_daemon levels-3
    expect p "PATCHED 2"
    ctl revert levels-2
    expect p "PATCHED 1"
    ctl revert levels-1
    expect p UNPATCHED
    daemon_stop
}
