# mount_ns: a process in another mount namespace (unshare -m), where the agent's state folder
# (and so the patch object's path) is hidden under an empty tmpfs, is patched and reverted.
run() {
    case_init
    cc_lib libmountns.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lmountns
    cc_patch patch.so "$SRC/patch.c"
    # unshare and sh exec in turn: the pid started is the program's.
    start p unshare --mount --propagation private -- sh -c 'mount -t tmpfs conformance "$1" && exec "$2"' sh "$CW/state" "$CW/prog"
    expect p UNPATCHED
    [ "$(readlink "/proc/$PID_p/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || fail "the program is in the agent's mount namespace"
    [ "$(readlink "/proc/$PID_p/exe")" = "$CW/prog" ] || fail "pid $PID_p is $(readlink "/proc/$PID_p/exe"), not the program"
    publish_hotpatch mount_ns-1 1 libmountns.so patch.so --replace answer=answer_fixed
    apply_then_revert p mount_ns-1
}
