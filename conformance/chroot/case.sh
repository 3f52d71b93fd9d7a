# chroot: a process that chroot()ed into an empty directory (the agent's patch object path does not
# exist there) is patched and reverted.
run() {
    case_init
    cc_lib libchroot.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lchroot
    cc_patch patch.so "$SRC/patch.c"
    mkdir -p jail
    start p ./prog "$CW/jail"
    expect p UNPATCHED
    [ "$(readlink "/proc/$PID_p/root")" = "$CW/jail" ] || fail "the program's root is $(readlink "/proc/$PID_p/root"), not $CW/jail"
    publish_hotpatch chroot-1 1 libchroot.so patch.so --replace answer=answer_fixed
    apply_then_revert p chroot-1
}
