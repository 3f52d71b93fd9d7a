# shellcheck shell=bash
# Time limits and durations, shared by scripts/test (each `swift test` run) and packaging/e2e/run
# (the whole container test). Source it; it defines functions only, and no name of its own
# outside the time_limit_ prefix besides now_ms and secs_since.

# now_ms: milliseconds since the epoch, for secs_since.
now_ms() { date +%s%3N; }

# secs_since START_MS: the time since START_MS (from now_ms), as "12.3 s".
secs_since() {
    local elapsed=$(( $(now_ms) - $1 ))
    printf '%d.%01d s' $((elapsed / 1000)) $(((elapsed % 1000) / 100))
}

# run_with_time_limit [--on-timeout FUNCTION] WHO SECONDS LABEL COMMAND...
# Runs COMMAND (an executable, not a shell function: it must be a process of its own) in the
# foreground, so that Ctrl-C reaches it as usual, with stdin from /dev/null. A watchdog in the
# background stops it if it still runs after SECONDS: it says so, shows the process tree (each
# process's state, tracer, kernel wait channel and threads), calls FUNCTION with COMMAND's pid for
# more (e.g. stacks), then sends SIGTERM to the whole tree, so that a script's traps clean up, and
# SIGKILL to whatever is left of it after TIME_LIMIT_GRACE seconds (default 10). The tree is
# listed before any signal, so processes orphaned by the first kills are still found.
# Its messages go to stderr, each prefixed "WHO: "; the last says how long LABEL took and its
# status. Returns COMMAND's status, or 124 when the time limit stopped it.
run_with_time_limit() {
    local on_timeout=
    if [ "$1" = --on-timeout ]; then on_timeout=$2; shift 2; fi
    local who=$1 limit=$2 label=$3
    shift 3
    if [[ ! $limit =~ ^[1-9][0-9]*$ ]]; then
        printf '%s: run_with_time_limit: the time limit of %s is "%s", not a number of seconds\n' "$who" "$label" "$limit" >&2
        return 2
    fi
    if [ "$(type -t "$1")" != file ]; then
        printf '%s: run_with_time_limit: %s is not an executable (a shell function or builtin would run in this shell, beyond the watchdog'"'"'s reach)\n' "$who" "$1" >&2
        return 2
    fi
    local self=$BASHPID caller started watchdog status=0 watchdog_status=0
    time_limit_stat "/proc/$self/stat"
    caller=$self:$time_limit_start
    started=$(now_ms)
    time_limit_watchdog "$who" "$limit" "$label" "$caller" "$on_timeout" &
    watchdog=$!
    "$@" </dev/null || status=$?
    # A watchdog that has fired ignores this and finishes its kills; one still waiting exits.
    kill -TERM "$watchdog" 2>/dev/null || true
    wait "$watchdog" || watchdog_status=$?
    if [ "$watchdog_status" -eq 124 ]; then
        printf '%s: %s stopped at its time limit after %s (status %s; reported as 124)\n' "$who" "$label" "$(secs_since "$started")" "$status" >&2
        return 124
    fi
    printf '%s: %s took %s (status %s)\n' "$who" "$label" "$(secs_since "$started")" "$status" >&2
    return "$status"
}

# time_limit_watchdog WHO SECONDS LABEL CALLER ON_TIMEOUT: run_with_time_limit's watchdog, a
# subshell; CALLER is the calling shell as pid:start-time. Exits 0 when told to (SIGTERM) before
# SECONDS or when the caller is gone (a Ctrl-C may end it without a word to this subshell, which
# ignores SIGINT as every background job of a script does); 124 after stopping the command.
time_limit_watchdog() {
    local who=$1 limit=$2 label=$3 caller=$4 on_timeout=$5 sleeper='' deadline remaining pid
    # Whatever fails here (a process gone between two looks), the kills must still happen.
    set +e
    trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM
    deadline=$(( $(now_ms) + limit * 1000 ))
    # Slept in steps of at most 30 s, to notice a caller that is gone; and a sleep killed by
    # someone else ends early, so only the clock says that the limit is reached.
    while (( $(now_ms) < deadline )); do
        time_limit_is "$caller" || exit 0
        remaining=$(( (deadline - $(now_ms) + 999) / 1000 ))
        sleep $(( remaining > 30 ? 30 : remaining )) &
        sleeper=$!
        wait "$sleeper"
        sleeper=
    done
    trap '' TERM
    time_limit_is "$caller" || exit 0
    # The command is the caller's other child (the caller waits for it in the foreground).
    local command_pids=() processes=()
    for pid in $(pgrep -P "${caller%%:*}"); do
        [ "$pid" = "$BASHPID" ] || command_pids+=("$pid")
    done
    [ "${#command_pids[@]}" -gt 0 ] || exit 0 # it ended just now
    printf '%s: TIMEOUT: %s still runs after %s s; stopping it. Its processes:\n' "$who" "$label" "$limit" >&2
    for pid in "${command_pids[@]}"; do
        mapfile -t -O "${#processes[@]}" processes < <(time_limit_process_tree "$pid")
    done
    time_limit_show_processes "${processes[@]}"
    if [ -n "$on_timeout" ]; then
        for pid in "${command_pids[@]}"; do "$on_timeout" "$pid" || true; done
    fi
    time_limit_signal TERM "${processes[@]}"
    local grace_deadline=$(( $(now_ms) + ${TIME_LIMIT_GRACE:-10} * 1000 ))
    while (( $(now_ms) < grace_deadline )) && time_limit_any_alive "${command_pids[@]/%/:}"; do
        sleep 0.2
    done
    time_limit_signal KILL "${processes[@]}"
    exit 124
}

# The functions below read /proc with bash builtins only: a hung test may have many processes and
# threads, on a machine busy enough that a fork per field took 20 s for 35 threads.

# time_limit_process_tree PID: PID and its descendants, parents first, one "pid:start-time" a line
# (the start time tells a process from a later one that reuses its pid).
time_limit_process_tree() {
    local child
    time_limit_stat "/proc/$1/stat" || return 0
    printf '%s:%s\n' "$1" "$time_limit_start"
    for child in $(pgrep -P "$1"); do time_limit_process_tree "$child"; done
}

# time_limit_stat FILE: sets time_limit_state and time_limit_start from a /proc stat file (fields 3
# and 22, counted after the command name, which may hold spaces and parentheses); fails when the
# process is gone.
time_limit_stat() {
    local line fields
    { read -r line <"$1"; } 2>/dev/null || return 1
    read -ra fields <<<"${line##*) }"
    time_limit_state=${fields[0]} time_limit_start=${fields[19]}
}

# time_limit_is PID:START: whether that process still runs (not exited, not a zombie awaiting its
# parent). An empty START matches any process with that pid.
time_limit_is() {
    local start=${1#*:}
    time_limit_stat "/proc/${1%%:*}/stat" && [ "$time_limit_state" != Z ] &&
        { [ -z "$start" ] || [ "$time_limit_start" = "$start" ]; }
}

# time_limit_any_alive PID:START...: whether one of them still runs.
time_limit_any_alive() {
    local entry
    for entry in "$@"; do time_limit_is "$entry" && return 0; done
    return 1
}

# time_limit_signal SIGNAL PID:START...: sends SIGNAL to those still running, children first.
time_limit_signal() {
    local signal=$1 index entry
    shift
    local entries=("$@")
    for ((index = ${#entries[@]} - 1; index >= 0; index--)); do
        entry=${entries[index]}
        if time_limit_is "$entry"; then kill "-$signal" "${entry%%:*}" 2>/dev/null; fi
    done
    return 0
}

# time_limit_read VARIABLE FILE: the file's text without its last newline ("" when unreadable).
time_limit_read() {
    printf -v "$1" ''
    { IFS= read -r -d '' "$1" <"$2"; } 2>/dev/null
    printf -v "$1" '%s' "${!1%$'\n'}"
}

# time_limit_show_processes PID:START...: each process (command line, state, tracer, kernel wait
# channel) and, when it has several, its threads, on stderr.
time_limit_show_processes() {
    local entry pid arguments key value state tracer wchan task comm tasks
    for entry in "$@"; do
        time_limit_is "$entry" || continue
        pid=${entry%%:*}
        arguments=() state='' tracer=''
        { mapfile -d '' -t arguments <"/proc/$pid/cmdline"; } 2>/dev/null
        while IFS=$'\t' read -r key value; do
            case $key in State:) state=$value ;; TracerPid:) tracer=$value ;; esac
        done 2>/dev/null <"/proc/$pid/status"
        time_limit_read wchan "/proc/$pid/wchan"
        printf '  process %s: %s [%s, TracerPid %s, wchan %s]\n' "$pid" "${arguments[*]}" "$state" "$tracer" "$wchan" >&2
        tasks=(/proc/"$pid"/task/*)
        [ "${#tasks[@]}" -gt 1 ] || continue
        for task in "${tasks[@]}"; do
            time_limit_read comm "$task/comm"
            time_limit_read wchan "$task/wchan"
            time_limit_stat "$task/stat" || continue
            printf '    thread %s %s state=%s wchan=%s\n' "${task##*/}" "$comm" "$time_limit_state" "$wchan" >&2
        done
    done
}
