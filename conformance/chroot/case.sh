# chroot: a process that chroot()ed into an empty directory (the agent's patch object path does not
# exist there) is patched and reverted.
run() {
    mkdir -p jail
    PROG_ARGS=("$CW/jail")
    library_case libchroot.so --replace answer=answer_fixed
}

before_patch() {
    [ "$(readlink "/proc/$PID_p/root")" = "$CW/jail" ] || fail "the program's root is $(readlink "/proc/$PID_p/root"), not $CW/jail"
}
