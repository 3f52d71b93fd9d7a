# sigwait: a thread blocked in sigwaitinfo and one in sigsuspend while the process is patched and
# reverted; each still wakes for its own signal only, and then runs the code in force.
run() {
    case_init
    cc_lib libsigwait.so "$SRC/lib.c"
    cc_prog prog "$SRC/prog.c" -L. -lsigwait
    cc_patch patch.so "$SRC/patch.c"
    start p ./prog
    expect p READY
    both_signals UNPATCHED
    publish_hotpatch sigwait-1 1 libsigwait.so patch.so --replace answer=answer_fixed
    apply_once
    # No wait ended on its own.
    stays p "UNPATCHED sigsuspend" 0.5
    both_signals PATCHED
    revert_via_daemon sigwait-1
    stays p "PATCHED sigsuspend" 0.5
    both_signals UNPATCHED
    daemon_stop
}

# both_signals STATE: SIGUSR1 wakes the sigwaitinfo thread, SIGUSR2 the sigsuspend one; each
# prints STATE.
both_signals() {
    kill -USR1 "$PID_p"
    expect p "$1 sigwait"
    kill -USR2 "$PID_p"
    expect p "$1 sigsuspend"
}
