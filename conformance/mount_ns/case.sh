# mount_ns: a process in another mount namespace (unshare -m), where the agent's state folder
# (and so the patch object's path) is hidden under an empty tmpfs, is patched and reverted.
run() {
    # unshare and sh exec in turn: the pid started is the program's.
    PROG_WRAPPER=(unshare --mount --propagation private -- sh -c 'mount -t tmpfs conformance "$1" && exec "$2"' sh "$CW/state")
    library_case libmountns.so --replace answer=answer_fixed
}

before_patch() {
    [ "$(readlink "/proc/$PID_p/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || fail "the program is in the agent's mount namespace"
    [ "$(readlink "/proc/$PID_p/exe")" = "$CW/prog" ] || fail "pid $PID_p is $(readlink "/proc/$PID_p/exe"), not the program"
}
