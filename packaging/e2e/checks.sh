# shellcheck shell=bash
# The checks of packaging/e2e/run, and what they share. Sourced after the container is set up.
# Each check_N returns 0 when it passed; a failure prints what was expected, what was seen, and
# the journal tail.

APPLIED_ID=dd23786464f3442c8c85d35313ba3cbc
VERIFY_FAILED_ID=3b14140c65d245b498a8113957d2d9a0
REBOOT_REQUIRED_ID=0bb2d2e4e104443983743621334aa25c
PACKAGES_INSTALLED_ID=3ee18f694484489f8e796b71c0a2a0e8
AGENT_UNIT=hotpatch-agent.service
CHANNEL_IN=/var/lib/hotpatch-agent/channel

say() { printf 'e2e:   %s\n' "$*"; }
fail() { printf 'e2e: check %s: %s\n' "$CHECK" "$*"; }

# Sets SINCE to the next whole second and waits for it, so that `--since @$SINCE` (whole seconds)
# sees only what happens from now on, never the end of the previous check.
SINCE=
next_second() {
    SINCE=$(( $(date +%s) + 1 ))
    while (( $(date +%s) < SINCE )); do sleep 0.05; done
}

# The agent's and the victim's recent journal, for a failure's evidence.
evidence() {
    [[ -n $LEADER ]] || { say "(container not running: no journal to show)"; return 0; }
    say "journalctl -b -u $AGENT_UNIT (last 25 lines):"
    cexec journalctl -b -u "$AGENT_UNIT" -n 25 --no-pager 2>&1 | indent
    say "agentctl processes:"
    cexec agentctl processes 2>&1 | indent
    say "journalctl -b -u victim (last 3 lines):"
    cexec journalctl -b -u victim.service -n 3 -o cat --no-pager 2>&1 | indent
}

# Copies the publisher's channel into the container as a mirror would: the release files first,
# then index.json and index.json.sig renamed into place together (one burst for the agent's
# directory watcher). With a path (relative to the channel), one byte of that file is flipped in
# the container's copy before the index arrives.
publish_into_container() {
    local dst=$E2E_MERGED$CHANNEL_IN incoming=$E2E_MERGED/var/lib/.e2e-incoming d
    mkdir -p -m 0755 "$dst" "$incoming"
    for d in hotpatches baselines fixes; do
        [[ -d $CHANNEL/$d ]] || continue
        mkdir -p -m 0755 "$dst/$d"
        cp -a "$CHANNEL/$d/." "$dst/$d/"
    done
    [[ -n ${1:-} ]] && flip_byte "$dst/$1" 64
    cp -p "$CHANNEL/index.json" "$CHANNEL/index.json.sig" "$incoming/"
    mv -f "$incoming/index.json" "$dst/index.json"
    mv -f "$incoming/index.json.sig" "$dst/index.json.sig"
}

flip_byte() {
    local file=$1 offset=$2 byte
    byte=$(od -An -tu1 -j "$offset" -N1 "$file" | tr -d ' ')
    # shellcheck disable=SC2059
    printf "\\x$(printf %02x $((byte ^ 0xff)))" | dd of="$file" bs=1 seek="$offset" conv=notrunc status=none
}

victim_line() { cexec journalctl -b -u victim.service -o cat -n 1 --no-pager 2>/dev/null | tail -n 1; }
victim_props() { cexec systemctl show -p NRestarts -p ExecMainPID -p ExecMainStartTimestampMonotonic victim.service | sort | tr '\n' ' '; }
victim_pid() { cexec systemctl show -p MainPID --value victim.service; }

# Waits until the latest line printed by command $3... contains $1 (at most $2 seconds); prints the
# last line seen.
wait_line() {
    local want=$1 deadline=$(( $(now_ms) + $2 * 1000 )) line
    shift 2
    while :; do
        line=$("$@")
        [[ $line == *"$want"* ]] && { printf '%s\n' "$line"; return 0; }
        (( $(now_ms) < deadline )) || { printf '%s\n' "$line"; return 1; }
        sleep 0.25
    done
}

# Waits until the victim's latest line contains $1 (at most $2 seconds); prints the last line seen.
wait_victim() { wait_line "$1" "$2" victim_line; }

# The victim's parse_length lines since epoch second $1, counted by distinct behaviour.
victim_behaviours_since() {
    cexec journalctl -b -u victim.service -o cat --no-pager --since "@$1" 2>/dev/null \
        | grep -o 'parse_length(100)=[0-9]* banner=[0-9]*' | sort | uniq -c | sed 's/^ *//'
}

status_json() { cexec agentctl status --json 2>"$E2E_WORK/agentctl.err"; }

# Waits until `agentctl status --json` satisfies the jq expression $1 (at most $2 seconds).
wait_status() {
    local expr=$1 deadline=$(( $(now_ms) + $2 * 1000 )) json
    while :; do
        json=$(status_json) && jq -e "$expr" >/dev/null 2>&1 <<<"$json" && { printf '%s\n' "$json"; return 0; }
        (( $(now_ms) < deadline )) || { printf '%s\n' "$json"; return 1; }
        sleep 0.3
    done
}

# Journal entries of the agent with MESSAGE_ID $1 since epoch second $2, as JSON lines.
journal_events() {
    cexec journalctl -u "$AGENT_UNIT" -o json --no-pager --since "@$2" "MESSAGE_ID=$1" 2>/dev/null
}

wait_journal_event() {
    local id=$1 since=$2 timeout=$3 deadline out
    deadline=$(( $(now_ms) + timeout * 1000 ))
    while :; do
        out=$(journal_events "$id" "$since")
        [[ -n $out ]] && { printf '%s\n' "$out"; return 0; }
        (( $(now_ms) < deadline )) || return 1
        sleep 0.3
    done
}

pack_hotpatch() { # id baseline level patch.so replace... [--ref SYMBOL]
    local id=$1 baseline=$2 level=$3 patch=$4; shift 4
    local args=(hotpatch --channel "$CHANNEL" --id "$id" --baseline "$baseline" --level "$level"
        --target "$FX/victim" --patch "$patch" --path-hint /usr/local/bin/victim
        --cve "CVE-2099-000$level" --description "e2e $id")
    local r
    for r in "$@"; do args+=("$r"); done
    pack "${args[@]}"
}

# Test-only drop-ins for the agent's unit, installed before the checks, each said out loud:
# - WatchdogSec=5s when the unit's is longer than 10 s, so "2 x WatchdogSec" stays short;
# - ProtectKernelTunables=no ProtectControlGroups=no when, in this container, they hide the per-boot
#   id: nspawn mounts a fresh /proc/sys/kernel/random/boot_id per container boot, and the service's
#   remounted view of /proc/sys shows the host's instead, which never changes; the agent would never
#   see the reboot of check 6 (and, with reboot = "auto", reboots again and again). On a VM or a
#   host this does not arise.
# - $E2E_AGENT_DROPIN, a file of the caller's (e.g. to try a unit change without a new package).
WATCHDOG_NOTE=
install_test_dropins() {
    local dir=$E2E_MERGED/etc/systemd/system/$AGENT_UNIT.d wd wd_us changed=
    mkdir -p "$dir"
    wd=$(cexec systemctl show -p WatchdogUSec --value "$AGENT_UNIT")
    wd_us=$(cexec systemd-analyze timespan "$wd" 2>/dev/null | awk '/μs:/ {print $2}')
    if [[ -n $wd_us ]] && (( wd_us > 10000000 )); then
        printf '[Service]\nWatchdogSec=5s\n' >"$dir/e2e-watchdog.conf"
        WATCHDOG_NOTE="the unit says $wd; lowered by the test's drop-in e2e-watchdog.conf"
        log "test drop-in e2e-watchdog.conf: WatchdogSec=5s (the unit's is $wd)"
        changed=1
    fi
    # What the agent sees, read through its own root (its mount namespace), against the container's.
    local plain seen
    plain=$(cexec cat /proc/sys/kernel/random/boot_id)
    seen=$(agent_boot_id)
    if [[ -n $seen && $seen != "$plain" ]]; then
        printf '[Service]\nProtectKernelTunables=no\nProtectControlGroups=no\n' >"$dir/e2e-bootid.conf"
        log "test drop-in e2e-bootid.conf: ProtectKernelTunables=no ProtectControlGroups=no (with them, the service sees the host's boot id $seen, not this container boot's $plain)"
        changed=1
    fi
    if [[ -n ${E2E_AGENT_DROPIN:-} ]]; then
        install -m 0644 "$E2E_AGENT_DROPIN" "$dir/e2e-caller.conf"
        log "test drop-in e2e-caller.conf from \$E2E_AGENT_DROPIN ($E2E_AGENT_DROPIN):"
        indent <"$E2E_AGENT_DROPIN"
        changed=1
    fi
    if [[ -n $changed ]]; then
        cexec systemctl daemon-reload
        cexec systemctl restart "$AGENT_UNIT" || log "warning: restarting $AGENT_UNIT with the test drop-ins failed"
        seen=$(agent_boot_id)
        [[ -z $seen || $seen == "$plain" ]] \
            || log "warning: the agent still sees boot id $seen, not $plain: it cannot notice the reboot of check 6"
    fi
}

# The agent's threads' stacks, when the host has gdb (the agent's host pid, from its cgroup).
agent_backtrace() {
    command -v gdb >/dev/null || return 0
    local procs pid
    procs=$(find "$E2E_CGROUP" -path "*/$AGENT_UNIT/cgroup.procs" 2>/dev/null | head -n1)
    [[ -n $procs ]] || return 0
    for pid in $(cat "$procs"); do
        say "gdb: threads of the agent (host pid $pid), innermost 14 frames each:"
        timeout 60 gdb -p "$pid" -batch -nx -ex 'set pagination off' -ex 'thread apply all bt 14' 2>/dev/null \
            | grep -E '^(Thread|#)' | sed -E 's/ \(.{120,}\)/ (...)/' | cut -c1-200 | indent
    done
}

agent_boot_id() {
    local pid
    pid=$(cexec systemctl show -p MainPID --value "$AGENT_UNIT")
    [[ -n $pid && $pid != 0 ]] && cexec cat "/proc/$pid/root/proc/sys/kernel/random/boot_id" 2>/dev/null
}

# ------------------------------------------------------------------------------------------------
# 1. The service runs, says what it does in StatusText, and pings the watchdog.
check_1() {
    local active text wd wd_us wait_s before after result nrestarts dog deadline watch
    active=$(cexec systemctl is-active "$AGENT_UNIT")
    [[ $active == active ]] || { fail "systemctl is-active $AGENT_UNIT says '$active', expected 'active'"; evidence; return 1; }
    say "systemctl is-active: $active"
    wd=$(cexec systemctl show -p WatchdogUSec --value "$AGENT_UNIT")
    wd_us=$(cexec systemd-analyze timespan "$wd" 2>/dev/null | awk '/μs:/ {print $2}')
    if [[ -z $wd_us || $wd_us == 0 ]]; then
        fail "the unit has no watchdog (WatchdogUSec=$wd); expected WatchdogSec= in the unit"; return 1
    fi
    say "WatchdogSec in force: $wd${WATCHDOG_NOTE:+ ($WATCHDOG_NOTE)}"
    deadline=$(( $(now_ms) + 15000 ))
    until text=$(cexec systemctl show -p StatusText --value "$AGENT_UNIT"); [[ $text == *"baseline deb12-b1"*patched* ]]; do
        (( $(now_ms) < deadline )) || { fail "StatusText is '$text', expected the agent's summary with 'baseline deb12-b1' and process counts"; evidence; return 1; }
        sleep 0.3
    done
    say "StatusText: $text"
    # The kernel ignores proc-connector subscriptions from outside the initial PID namespace, and
    # sends every listener's acknowledgement to all of them: an agent that took another's for its
    # own would wait for events that never come and miss every new process.
    watch=$(status_json | jq -r .processWatch)
    say "process watch: $watch"
    [[ $watch == scan* ]] || { fail "the agent says process watch '$watch' in a container, where the kernel sends it no process events; expected 'scan'"; return 1; }
    before=$(cexec systemctl show -p MainPID --value "$AGENT_UNIT")
    wait_s=$(( (2 * wd_us + 999999) / 1000000 + 1 ))
    say "watching the watchdog for $wait_s s (2 x WatchdogSec + 1 s)"
    sleep "$wait_s"
    after=$(cexec systemctl show -p MainPID --value "$AGENT_UNIT")
    result=$(cexec systemctl show -p Result --value "$AGENT_UNIT")
    nrestarts=$(cexec systemctl show -p NRestarts --value "$AGENT_UNIT")
    active=$(cexec systemctl is-active "$AGENT_UNIT")
    dog=$(cexec journalctl -b -u "$AGENT_UNIT" --no-pager -o cat | grep -i watchdog)
    say "after: is-active=$active Result=$result NRestarts=$nrestarts MainPID $before -> $after"
    if [[ $active != active || $result != success || $nrestarts != 0 || $before != "$after" || -n $dog ]]; then
        fail "watchdog: expected active, Result=success, NRestarts=0, the same MainPID and no 'watchdog' in the journal"
        [[ -n $dog ]] && printf '%s\n' "$dog" | indent
        evidence; return 1
    fi
}

# 2. A signed hotpatch copied into the channel patches the running victim service, no restart.
check_2() {
    local before after line t0 pid
    line=$(wait_victim 'parse_length(100)=100 banner=1' 10) \
        || { fail "victim does not run its original code before the hotpatch: '$line'"; evidence; return 1; }
    say "victim before: $line"
    before=$(victim_props)
    pid=$(victim_pid)
    say "victim.service (PID $pid, uid $(cexec stat -c %u "/proc/$pid"), MemoryDenyWriteExecute=$(cexec systemctl show -p MemoryDenyWriteExecute --value victim.service)): $before"
    pack_hotpatch victim-hp1 deb12-b1 1 "$FX/patch_level1.so" \
        --replace parse_length=parse_length_fixed --replace banner_version=banner_version_fixed
    pack publish --channel "$CHANNEL" --private-key "$PUB/publisher.key"
    t0=$(now_ms)
    publish_into_container
    say "published victim-hp1 (level 1) as channel version 2 into $CHANNEL_IN"
    line=$(wait_victim 'parse_length(100)=64 banner=2' 30) \
        || { fail "victim output did not change within 30 s: last line '$line'"; evidence; return 1; }
    say "victim after $(secs_since "$t0"): $line"
    after=$(victim_props)
    [[ $after == "$before" ]] || { fail "victim.service was restarted: before '$before', after '$after'"; return 1; }
    say "victim.service unchanged: $after"
}

# 3. The apply event in the journal: MESSAGE_ID and fields; the catalog explains it (-x).
check_3() {
    local json entry pid fields xtext
    pid=$(victim_pid)
    json=$(wait_journal_event "$APPLIED_ID" 0 10) \
        || { fail "no journal entry with MESSAGE_ID=$APPLIED_ID (applied)"; evidence; return 1; }
    entry=$(jq -c 'select(.HOTPATCH_ID == "victim-hp1")' <<<"$json" | tail -n 1)
    [[ -n $entry ]] || { fail "no applied entry with HOTPATCH_ID=victim-hp1 among:"; printf '%s\n' "$json" | indent; return 1; }
    fields=$(jq -r '"MESSAGE_ID=\(.MESSAGE_ID) HOTPATCH_ID=\(.HOTPATCH_ID) TARGET_PID=\(.TARGET_PID) PAUSE_USEC=\(.PAUSE_USEC) TARGET_EXE=\(.TARGET_EXE) BUILD_ID=\(.BUILD_ID) PRIORITY=\(.PRIORITY)"' <<<"$entry")
    say "journalctl -u $AGENT_UNIT -o json: $fields"
    say "MESSAGE=$(jq -r .MESSAGE <<<"$entry")"
    jq -e --arg pid "$pid" '.TARGET_PID == $pid and (.PAUSE_USEC | test("^[0-9]+$"))' >/dev/null <<<"$entry" \
        || { fail "expected TARGET_PID=$pid (victim's MainPID) and a numeric PAUSE_USEC"; return 1; }
    xtext=$(cexec journalctl -b -x -u "$AGENT_UNIT" --no-pager "MESSAGE_ID=$APPLIED_ID" 2>&1)
    if [[ $xtext != *"Subject: Hotpatch victim-hp1 applied to process $pid"* ]]; then
        fail "journalctl -x does not show the catalog text for $APPLIED_ID:"
        printf '%s\n' "$xtext" | tail -n 5 | indent
        say "catalog files: $(cexec sh -c 'ls /usr/lib/systemd/catalog/ 2>&1' | tr '\n' ' ')"
        if cexec journalctl --list-catalog 2>/dev/null | grep -q "$APPLIED_ID"; then
            say "the id is in the catalog database"
        else
            say "the id is NOT in the catalog database: the package's postinst should run 'journalctl --update-catalog'"
            if cexec sh -c 'grep -ls dd23786464f3442c8c85d35313ba3cbc /usr/lib/systemd/catalog/*' >/dev/null 2>&1; then
                cexec journalctl --update-catalog
                cexec journalctl -b -x -u "$AGENT_UNIT" --no-pager "MESSAGE_ID=$APPLIED_ID" 2>&1 | grep -q "Subject: Hotpatch victim-hp1" \
                    && say "(after running journalctl --update-catalog by hand, -x shows the text: the catalog file is right, the postinst step is missing)"
            fi
        fi
        return 1
    fi
    say "journalctl -x:"
    grep -E "Subject: Hotpatch victim-hp1|paused for" <<<"$xtext" | tail -n 2 | indent
}

# 4. agentctl answers root and an unprivileged user; a change by the unprivileged user is refused (77).
check_4() {
    local out rc json_root json_user err
    out=$(cexec agentctl status 2>&1); rc=$?
    [[ $rc == 0 && -n $out ]] || { fail "agentctl status as root: exit $rc: $out"; evidence; return 1; }
    say "agentctl status (root):"; printf '%s\n' "$out" | indent
    json_root=$(cexec agentctl status --json 2>&1) && jq -e '.verdict and .agentVersion and (.enrolled == true)' >/dev/null <<<"$json_root" \
        || { fail "agentctl status --json as root: $json_root"; return 1; }
    say "agentctl status --json (root): verdict=$(jq -r .verdict <<<"$json_root") hotpatch=$(jq -r .hotpatch.id <<<"$json_root") patched=$(jq -r .processes.patched <<<"$json_root")"
    out=$(cexec runuser -u nobody -- agentctl status 2>&1); rc=$?
    [[ $rc == 0 && $out == *hotpatch* ]] || { fail "agentctl status as nobody: exit $rc: $out"; return 1; }
    say "agentctl status (nobody): exit 0, $(wc -l <<<"$out") lines, first: $(head -n1 <<<"$out")"
    json_user=$(cexec runuser -u nobody -- agentctl status --json 2>&1) && jq -e '.verdict' >/dev/null <<<"$json_user" \
        || { fail "agentctl status --json as nobody: $json_user"; return 1; }
    [[ $(jq -r .verdict <<<"$json_user") == $(jq -r .verdict <<<"$json_root") ]] || { fail "verdicts differ between root and nobody"; return 1; }
    say "agentctl status --json (nobody): verdict=$(jq -r .verdict <<<"$json_user")"
    err=$(cexec runuser -u nobody -- agentctl unenroll 2>&1); rc=$?
    say "agentctl unenroll (nobody): exit $rc: $err"
    [[ $rc == 77 ]] || { fail "expected exit status 77 (EX_NOPERM), got $rc"; return 1; }
    [[ $err == *root* ]] || { fail "the refusal does not say that root is needed: $err"; return 1; }
    json_root=$(status_json)
    jq -e '.enrolled == true' >/dev/null <<<"$json_root" || { fail "the host is no longer enrolled after the refused unenroll"; return 1; }
}

# 5. A tampered file in the channel is refused, named, and nothing is applied; then repaired.
check_5() {
    local since file rel json entry reason behaviours status line
    pack_hotpatch victim-hp2 deb12-b1 2 "$FX/patch_level2.so" --replace parse_length=parse_length_fixed2 --ref helper_scale
    pack publish --channel "$CHANNEL" --private-key "$PUB/publisher.key"
    file=$(find "$CHANNEL/hotpatches/victim-hp2" -type f | head -n1)
    rel=${file#"$CHANNEL"/}
    next_second; since=$SINCE
    publish_into_container "$rel"
    say "published victim-hp2 (level 2) as channel version 3, with one byte of $rel flipped in the container's copy"
    json=$(wait_journal_event "$VERIFY_FAILED_ID" "$since" 20) \
        || { fail "no verification-failed entry (MESSAGE_ID=$VERIFY_FAILED_ID) within 20 s"; evidence; return 1; }
    entry=$(tail -n 1 <<<"$json")
    reason=$(jq -r '.REASON // .MESSAGE' <<<"$entry")
    say "journal: MESSAGE_ID=$(jq -r .MESSAGE_ID <<<"$entry") PRIORITY=$(jq -r .PRIORITY <<<"$entry") MESSAGE=$(jq -r .MESSAGE <<<"$entry")"
    [[ $reason == *"$(basename "$rel")"* ]] || { fail "the refusal does not name the file $rel: $reason"; return 1; }
    [[ $reason == *[Hh]ash* || $reason == *sha256* || $reason == *SHA-256* ]] || { fail "the refusal does not say the hash differs: $reason"; return 1; }
    sleep 3
    behaviours=$(victim_behaviours_since "$since")
    say "victim since the tampered publication: $(tr '\n' ';' <<<"$behaviours")"
    [[ $behaviours == *"parse_length(100)=64 banner=2"* && $behaviours != *"=32 "* && $behaviours != *"=100 "* ]] \
        || { fail "expected the victim to keep level 1's behaviour only (parse_length(100)=64 banner=2) while the channel is refused"; return 1; }
    if [[ -n $(journal_events "$APPLIED_ID" "$since") ]]; then
        fail "an applied event was logged after the tampered publication:"; journal_events "$APPLIED_ID" "$since" | jq -r .MESSAGE | indent; return 1
    fi
    status=$(wait_status '.channel.error != null and .verdict == "exposed"' 5) \
        || { fail "agentctl status --json does not show the channel error and verdict exposed: $status"; return 1; }
    say "agentctl status --json: verdict=$(jq -r .verdict <<<"$status") channel.error=$(jq -r .channel.error <<<"$status") channel.version=$(jq -r .channel.version <<<"$status")"
    cexec agentctl status 2>&1 | grep -i 'channel' | indent
    # Repair the mirror; `agentctl check` (the watcher only sees the top of the channel) re-verifies.
    cp -p "$file" "$E2E_MERGED$CHANNEL_IN/$rel"
    cexec agentctl check >/dev/null 2>&1 || { fail "agentctl check after the repair failed"; evidence; return 1; }
    line=$(wait_victim 'parse_length(100)=32 banner=1' 20) \
        || { fail "after repairing the channel, level 2 was not applied: victim says '$line'"; evidence; return 1; }
    status=$(wait_status '.channel.error == null and .hotpatch.id == "victim-hp2"' 5) \
        || { fail "after the repair, status still shows: $status"; return 1; }
    say "after repairing the mirror and agentctl check: victim '$line', verdict=$(jq -r .verdict <<<"$status")"
}

# 6. A new baseline: reboot-required files, reboot = "auto" reboots the container, and after the
#    boot the new baseline is active and its hotpatch applied.
check_6() {
    local since json rr pkgs rc status line boots
    pack baseline --channel "$CHANNEL" --id deb12-b2 --planned --description "e2e second baseline" \
        --file "$FX/baseline-b2.txt=/etc/hotpatch-e2e-baseline" --file "$FX/secret.key=/etc/hotpatch-e2e-secret.key" \
        --deb "$FX/hotpatch-e2e-tiny_1.0_all.deb"
    pack_hotpatch victim-b2-hp1 deb12-b2 1 "$FX/patch_level1.so" \
        --replace parse_length=parse_length_fixed --replace banner_version=banner_version_fixed
    pack publish --channel "$CHANNEL" --private-key "$PUB/publisher.key"
    next_second; since=$SINCE
    publish_into_container
    say "published baseline deb12-b2 (plain files /etc/hotpatch-e2e-baseline and a 0600 /etc/hotpatch-e2e-secret.key, package hotpatch-e2e-tiny 1.0) and victim-b2-hp1 as channel version 4"
    json=$(wait_journal_event "$REBOOT_REQUIRED_ID" "$since" 30) \
        || { fail "no reboot-required entry (MESSAGE_ID=$REBOOT_REQUIRED_ID) within 30 s"; evidence; return 1; }
    say "journal: $(tail -n1 <<<"$json" | jq -r .MESSAGE)"
    rr=$(cexec cat /run/reboot-required 2>&1) || { fail "/run/reboot-required is missing: $rr"; return 1; }
    pkgs=$(cexec cat /run/reboot-required.pkgs 2>&1) || { fail "/run/reboot-required.pkgs is missing: $pkgs"; return 1; }
    say "/run/reboot-required:"; printf '%s\n' "$rr" | indent
    say "/run/reboot-required.pkgs:"; printf '%s\n' "$pkgs" | indent
    [[ $rr == *"System restart required"* && $rr == *"deb12-b2"* ]] || { fail "/run/reboot-required lacks the banner or the reason"; return 1; }
    # .pkgs holds package names, one a line, as unattended-upgrades and update-notifier write them.
    grep -qx hotpatch-e2e-tiny <<<"$pkgs" || { fail "/run/reboot-required.pkgs does not list the package hotpatch-e2e-tiny"; return 1; }
    if grep -qx deb12-b2 <<<"$pkgs"; then fail "/run/reboot-required.pkgs lists the release id deb12-b2, not only package names"; return 1; fi
    [[ $(sort <<<"$pkgs" | uniq -d) == "" ]] || { fail "/run/reboot-required.pkgs lists a name twice"; return 1; }
    line=$(cexec dpkg-query -W -f='${db:Status-Status} ${Version}' hotpatch-e2e-tiny 2>&1)
    [[ $line == "installed 1.0" ]] || { fail "the baseline's package hotpatch-e2e-tiny is not installed at 1.0: $line"; return 1; }
    say "the baseline's package: hotpatch-e2e-tiny $line"
    local modes
    modes=$(stat -c '%a %n' "$E2E_MERGED/etc/hotpatch-e2e-secret.key" "$E2E_MERGED/var/lib/hotpatch-agent" \
        "$E2E_MERGED/var/lib/hotpatch-agent/store/installs" $(grep -rlF -f "$FX/secret.key" "$E2E_MERGED/var/lib/hotpatch-agent" 2>/dev/null) 2>&1)
    say "modes: $(sed "s|$E2E_MERGED||" <<<"$modes" | tr '\n' ',' | sed 's/,$//; s/,/, /g')"
    if awk '$2 ~ /secret|channel\/baselines|store\/installs\// && $1 != "600" {bad=1} $2 ~ /store\/installs$/ && $1 != "700" {bad=1} $2 ~ /hotpatch-agent$/ && $1 != "711" {bad=1} END {exit !bad}' <<<"$modes"; then
        fail "a copy of the 0600 file is not 0600, or store/installs is not 0700, or the state directory is not 0711"; return 1
    fi
    [[ $(cat "$E2E_MERGED/etc/hotpatch-e2e-baseline" 2>/dev/null) == *deb12-b2* ]] \
        || { fail "the baseline's file /etc/hotpatch-e2e-baseline was not installed"; return 1; }
    say "the baseline's plain file is installed: /etc/hotpatch-e2e-baseline ($(stat -c '%a %U' "$E2E_MERGED/etc/hotpatch-e2e-baseline"))"
    status=$(wait_status '.reboot.required == true and (.baseline.pending | index("deb12-b2"))' 5) \
        || { fail "agentctl status --json does not show the pending reboot: $status"; return 1; }
    say "before the reboot: verdict=$(jq -r .verdict <<<"$status") baseline.active=$(jq -r .baseline.active <<<"$status") pending=$(jq -c .baseline.pending <<<"$status") victim '$(victim_line)'"

    # reboot = "auto" and a reload: the agent reboots the host (nspawn exits with 133).
    printf '\n# e2e test\nreboot = "auto"\n' >>"$E2E_MERGED/etc/hotpatch-agent/agent.toml"
    cexec timeout 30 systemctl reload "$AGENT_UNIT" >"$E2E_WORK/reload.log" 2>&1 || true
    say "set reboot = \"auto\" in /etc/hotpatch-agent/agent.toml and ran systemctl reload"
    wait_container_exit 60
    rc=$E2E_EXIT
    if [[ $rc != 133 ]]; then
        fail "expected the container to reboot within 60 s (systemd-nspawn exit status 133), got: $rc"
        say "systemctl reload said:"; indent <"$E2E_WORK/reload.log"
        if [[ $rc == timeout ]]; then
            evidence
            say "systemctl list-jobs (first lines):"; cexec systemctl list-jobs --no-pager 2>&1 | head -n 4 | indent
            say "processes of $AGENT_UNIT (pid ppid state wchan command):"
            cexec sh -c 'for p in $(cat /sys/fs/cgroup/system.slice/'"$AGENT_UNIT"'/cgroup.procs 2>/dev/null); do
                printf "%s %s %s %s %s\n" "$p" "$(awk "/^PPid:/ {print \$2}" /proc/$p/status)" "$(awk "/^State:/ {print \$2}" /proc/$p/status)" \
                    "$(cat /proc/$p/wchan)" "$(tr "\0" " " </proc/$p/cmdline)"
                for t in /proc/$p/task/*; do printf "  thread %s %s: %s, %s\n" "${t##*/}" "$(cat $t/comm)" "$(awk "/^State:/ {print \$2}" $t/status)" "$(cat $t/wchan)"; done; done' 2>&1 | indent
            agent_backtrace
            say "console:"; console_tail 5 | tr '\r' '\n' | tail -n 3 | indent
            # Let a slow shutdown finish (systemd's stop timeouts) so that check 7 can still run.
            local t_slow; t_slow=$(now_ms)
            wait_container_exit 150
            say "then systemd-nspawn exited with status $E2E_EXIT after a further $(secs_since "$t_slow")"
            [[ $E2E_EXIT == 133 ]] && boot_container
        fi
        return 1
    fi
    say "the container rebooted (systemd-nspawn exited with 133); booting the same overlay again"
    boot_container || { fail "the second boot failed"; return 1; }
    boots=$(cexec journalctl --list-boots --no-pager | grep -cE '^ *-?[0-9]+ ')
    status=$(wait_status '.baseline.active == "deb12-b2" and .reboot.required == false and .hotpatch.id == "victim-b2-hp1" and .processes.patched >= 1' 30) \
        || { fail "after the reboot agentctl status --json shows: $status"; evidence; return 1; }
    say "after the reboot ($boots boots in the journal): baseline.active=$(jq -r .baseline.active <<<"$status") reboot.required=$(jq -r .reboot.required <<<"$status") hotpatch=$(jq -r .hotpatch.id <<<"$status") level $(jq -r .hotpatch.level <<<"$status") patched=$(jq -r .processes.patched <<<"$status") verdict=$(jq -r .verdict <<<"$status")"
    if cexec test -e /run/reboot-required; then fail "/run/reboot-required still exists after the reboot"; return 1; fi
    line=$(wait_victim 'parse_length(100)=64 banner=2' 20) \
        || { fail "the new victim process does not run deb12-b2's hotpatch: '$line'"; evidence; return 1; }
    say "victim (new process, PID $(victim_pid)): $line"
}

# 9. A baseline whose package fails to install (hotpatch-e2e-tiny 2.0, preinst exits 1): the package
#    stays at 1.0, and status names the failed baseline and why (verdict exposed, agentctl exits non-0).
check_9() {
    local since status json version rc reason
    pack baseline --channel "$CHANNEL" --id deb12-b3 --planned --description "e2e baseline whose package fails" \
        --deb "$FX/hotpatch-e2e-tiny_2.0_all.deb"
    pack publish --channel "$CHANNEL" --private-key "$PUB/publisher.key"
    next_second; since=$SINCE
    publish_into_container
    say "published baseline deb12-b3 (hotpatch-e2e-tiny 2.0, whose preinst exits 1) as channel version 5"
    status=$(wait_status '.verdict == "exposed" and any(.reasons[]; .message | test("baseline deb12-b3 failed to install"))' 60) \
        || { fail "agentctl status --json does not report the failed baseline deb12-b3: $status"; evidence; return 1; }
    reason=$(jq -r '.reasons[] | select(.message | test("deb12-b3")) | .message' <<<"$status")
    say "status: verdict=$(jq -r .verdict <<<"$status"); reason: $reason"
    [[ $reason == *preinst* || $reason == *pre-installation* ]] \
        || { fail "the reason does not carry dpkg's error (the preinst's failure): $reason"; return 1; }
    version=$(cexec dpkg-query -W -f='${db:Status-Status} ${Version}' hotpatch-e2e-tiny 2>&1)
    [[ $version == "installed 1.0" ]] || { fail "hotpatch-e2e-tiny must stay at 1.0 after the failed upgrade: $version"; return 1; }
    say "hotpatch-e2e-tiny stays: $version"
    cexec agentctl status --exit-code >/dev/null 2>&1; rc=$?
    [[ $rc != 0 ]] || { fail "agentctl status --exit-code exits 0 while a baseline failed to install"; return 1; }
    say "agentctl status --exit-code exits $rc"
    json=$(status_json)
    jq -e '.baseline.active == "deb12-b2" and (.baseline.pending | index("deb12-b3") | not)' >/dev/null <<<"$json" \
        || { fail "deb12-b3 must be neither active nor pending: $(jq -c .baseline <<<"$json")"; return 1; }
    # One attempt per index version: further cycles do not try again (and do not log again).
    cexec agentctl check >/dev/null 2>&1
    cexec agentctl check >/dev/null 2>&1
    local attempts
    attempts=$(cexec journalctl -u "$AGENT_UNIT" -o cat --no-pager --since "@$since" 2>/dev/null | grep -c 'Failed to install deb12-b3')
    [[ $attempts == 1 ]] || { fail "expected one logged attempt of deb12-b3 (no retry on every poll), saw $attempts"; return 1; }
    say "one logged attempt after two more cycles (agentctl check): no retry on every poll"
}

# Shuts the container down (nspawn exits 0) and boots it again with ARGS as its kernel command line.
restart_container() {
    cexec systemctl --no-block poweroff >/dev/null 2>&1 || true
    wait_container_exit 60
    [[ $E2E_EXIT == 0 ]] || { fail "expected the container to power off within 60 s (exit status 0), got: $E2E_EXIT"; return 1; }
    boot_container "$@" || { fail "the container did not boot again"; return 1; }
}

# 8 (beyond the issue's list; runs before 7, which removes the package). The kill switch:
# booted with hotpatch.enable=0 the agent does not start and a process started meanwhile stays
# unpatched; booted without it, the agent starts and patches that process again.
check_8() {
    local active condition skipped line status
    restart_container hotpatch.enable=0 || return 1
    active=$(cexec systemctl is-active "$AGENT_UNIT")
    condition=$(cexec systemctl show -p ConditionResult --value "$AGENT_UNIT")
    say "booted with hotpatch.enable=0: is-active=$active ConditionResult=$condition"
    [[ $active == inactive && $condition == no ]] \
        || { fail "with hotpatch.enable=0 the agent must not start (is-active=$active, ConditionResult=$condition)"; evidence; return 1; }
    skipped=$(cexec journalctl -b -u "$AGENT_UNIT" -o cat --no-pager 2>/dev/null | grep -m1 'ConditionKernelCommandLine')
    [[ -n $skipped ]] && say "journal: $skipped"
    if cexec agentctl status >/dev/null 2>&1; then fail "agentctl status got an answer although the agent must not run"; return 1; fi
    line=$(wait_victim 'parse_length(100)=100 banner=1' 20) \
        || { fail "the new victim process should run unpatched while the agent is off: '$line'"; return 1; }
    sleep 2
    line=$(victim_line)
    [[ $line == 'parse_length(100)=100 banner=1'* ]] || { fail "the victim changed while the agent was off: '$line'"; return 1; }
    say "victim (new process, PID $(victim_pid)) while the agent is off: $line"

    restart_container || return 1
    status=$(wait_status '.hotpatch.id == "victim-b2-hp1" and .processes.patched >= 1' 30) \
        || { fail "booted without the kill switch, the agent does not report the victim patched: $status"; evidence; return 1; }
    line=$(wait_victim 'parse_length(100)=64 banner=2' 20) \
        || { fail "booted without the kill switch, the victim is not patched again: '$line'"; evidence; return 1; }
    say "booted without it: is-active=$(cexec systemctl is-active "$AGENT_UNIT"), victim (PID $(victim_pid)): $line"
}

# 10. A real Debian 12 library, fixed as zlib fixes it, in every running program that maps it.
#     The target is the root file system's own libz.so.1 (zlib1g 1:1.2.13.dfsg-1, stripped, as
#     installed); the patch object is its source package's deflate.c with upstream commit e5546956
#     applied (packaging/e2e/reallib/build). Two programs map it: zbound-mt, multi-threaded,
#     started from a shell, and zgzip-svc.service, a systemd service with a dynamic user and
#     MemoryDenyWriteExecute=yes. Before: the bound deflateBound() gives for a stored (level 0)
#     stream at memLevel 9 is too small, and their one-shot deflate() cannot finish. After the
#     hotpatch (same processes): the bound fits and deflate() finishes. After `agentctl revert`:
#     the old behaviour again, the same processes still running.
ZLIB_HP_ID=zlib-deflatebound-hp
ZLIB_LEVEL=3   # above check 11's level 2 of the same baseline
ZBOUND_LOG=/var/log/zbound-mt.log
zbound_line() { tail -n 1 "$E2E_MERGED$ZBOUND_LOG" 2>/dev/null; }
zgzip_line() { cexec journalctl -b -u zgzip-svc.service -o cat -n 1 --no-pager 2>/dev/null | tail -n 1; }
zgzip_props() { cexec systemctl show -p NRestarts -p ExecMainPID -p ExecMainStartTimestampMonotonic zgzip-svc.service | sort | tr '\n' ' '; }
# Container pids whose memory maps the targeted libz (by path: the library is the root's own file).
zlib_mappers() { cexec sh -c "grep -l ' $ZLIB_PATH_IN\$' /proc/[0-9]*/maps 2>/dev/null" | cut -d/ -f3 | grep -vx self | sort -n | tr '\n' ' '; }
# Both programs' latest lines show behaviour $1 ("before" or "after" the fix), within $2 seconds.
zlib_behaviour() {
    local want_mt want_svc
    if [[ $1 == after ]]; then want_mt='finished=3/3'; want_svc='result=complete'
    else want_mt='finished=0/3'; want_svc='result=truncated'; fi
    ZB=$(wait_line "$want_mt" "$2" zbound_line) \
        || { fail "zbound-mt (pid $ZB_PID) does not show the behaviour $1 the fix ('$want_mt'): '$ZB'"; return 1; }
    ZG=$(wait_line "$want_svc" "$2" zgzip_line) \
        || { fail "zgzip-svc.service does not show the behaviour $1 the fix ('$want_svc'): '$ZG'"; return 1; }
    say "$1 the fix: $ZB"
    say "$1 the fix: $ZG"
}

ZB= ZG= ZB_PID=
check_10() {
    local props_before props_after mappers processes pid state t0 json agent victim bad=
    say "target: $ZLIB_PATH_IN in the container, build-id $(readelf -n "$ZLIB_TARGET" | awk '/Build ID/ {print $3}'), from $E2E_SOURCE_VERSION"
    say "fix: deflate.c of that source package + upstream zlib commit e5546956 (deflateBound, level 0 and memLevel 9) -> $(basename "$FX/reallib/deflateBound-fix.so") (defines: $(nm -D --defined-only "$FX/reallib/deflateBound-fix.so" | awk '{print $3}' | tr '\n' ' '))"
    ZB_PID=$(cexec sh -c "nice -n 19 setsid /usr/local/bin/zbound-mt --threads 3 --interval-ms 250 >$ZBOUND_LOG 2>&1 </dev/null & echo \$!")
    [[ $ZB_PID =~ ^[0-9]+$ ]] || { fail "zbound-mt did not start: '$ZB_PID'"; return 1; }
    say "started zbound-mt (3 worker threads) from a shell: pid $ZB_PID; zgzip-svc.service: pid $(cexec systemctl show -p MainPID --value zgzip-svc.service)"
    zlib_behaviour before 10 || { evidence; return 1; }
    props_before=$(zgzip_props)
    mappers=$(zlib_mappers)
    say "processes mapping $ZLIB_PATH_IN: $mappers"
    [[ " $mappers " == *" $ZB_PID "* ]] || { fail "zbound-mt (pid $ZB_PID) does not map $ZLIB_PATH_IN"; return 1; }

    pack hotpatch --channel "$CHANNEL" --id "$ZLIB_HP_ID" --baseline deb12-b2 --level "$ZLIB_LEVEL" \
        --target "$ZLIB_TARGET" --path-hint "$ZLIB_PATH_IN" --patch "$FX/reallib/deflateBound-fix.so" \
        --replace deflateBound=deflateBound --description "zlib deflateBound(): level 0 with memLevel 9 uses the stored-block bound (upstream e5546956)"
    pack publish --channel "$CHANNEL" --private-key "$PUB/publisher.key"
    next_second
    t0=$(now_ms)
    publish_into_container
    say "published $ZLIB_HP_ID (baseline deb12-b2, level $ZLIB_LEVEL) into $CHANNEL_IN"
    zlib_behaviour after 30 || { evidence; return 1; }
    say "both programs fixed $(secs_since "$t0") after the publication"

    # Every process that maps the library carries the fix, and none was restarted.
    mappers=$(zlib_mappers)
    processes=$(cexec agentctl processes --json 2>&1)
    agent=$(cexec systemctl show -p MainPID --value "$AGENT_UNIT")
    for pid in $mappers; do
        [[ $pid == "$agent" ]] && { say "pid $pid is the agent itself (it never patches itself)"; continue; }
        state=$(jq -r --argjson pid "$pid" '.[] | select(.pid == $pid) | "\(.state) \(.hotpatch) \(.pauseUsec)"' <<<"$processes" 2>/dev/null)
        say "pid $pid ($(cexec cat "/proc/$pid/comm" 2>/dev/null)): ${state:-not listed by agentctl processes}"
        [[ $state == "patched $ZLIB_HP_ID "* ]] || bad=1
    done
    [[ -z $bad ]] || { fail "a process that maps $ZLIB_PATH_IN is not patched with $ZLIB_HP_ID"; printf '%s\n' "$processes" | indent; evidence; return 1; }
    json=$(journal_events "$APPLIED_ID" "$SINCE" | jq -c "select(.HOTPATCH_ID == \"$ZLIB_HP_ID\") | {TARGET_PID, PAUSE_USEC}")
    say "applied entries: $(tr '\n' ' ' <<<"$json")"
    cexec kill -0 "$ZB_PID" || { fail "zbound-mt (pid $ZB_PID) is gone"; return 1; }
    props_after=$(zgzip_props)
    [[ $props_after == "$props_before" ]] || { fail "zgzip-svc.service was restarted: before '$props_before', after '$props_after'"; return 1; }
    say "same processes: zbound-mt pid $ZB_PID alive; zgzip-svc.service $props_after"
    # Levels are cumulative per object: level 3 names only libz, so the victim keeps level 1's fix
    # and xmlbuf-svc level 2's (check 11).
    victim=$(victim_line)
    [[ $victim == *'parse_length(100)=64 banner=2'* ]] || {
        fail "victim meanwhile: $victim, expected victim-b2-hp1's 'parse_length(100)=64 banner=2': level $ZLIB_LEVEL, which names only libz, must keep level 1's fix of the victim in force"; evidence; return 1; }
    say "victim meanwhile: $victim (victim-b2-hp1, level 1, stays in force under level $ZLIB_LEVEL, which names only libz)"
    if [[ -n $EXPAT_APPLIED ]]; then
        local xml
        xml=$(xmlbuf_line)
        [[ $xml == *'oversized=41 '*'then=ok'* ]] || {
            fail "xmlbuf-svc meanwhile: '$xml', expected check 11's fix ('oversized=41 … then=ok'): level $ZLIB_LEVEL, which names only libz, must keep level 2's fix of libexpat in force"; evidence; return 1; }
        say "xmlbuf-svc meanwhile: $xml ($EXPAT_HP_ID, level $EXPAT_LEVEL, stays in force too)"
    fi

    # Reverted through the daemon: the old behaviour again, in the same processes.
    t0=$(now_ms)
    json=$(cexec agentctl revert "$ZLIB_HP_ID" 2>&1) || { fail "agentctl revert $ZLIB_HP_ID failed: $json"; evidence; return 1; }
    say "agentctl revert $ZLIB_HP_ID: $json"
    zlib_behaviour before 30 || { evidence; return 1; }
    say "both programs back to the library's own code $(secs_since "$t0") after the revert"
    processes=$(cexec agentctl processes --json 2>&1)
    for pid in $mappers; do
        state=$(jq -r --argjson pid "$pid" '.[] | select(.pid == $pid) | "\(.state) \(.hotpatch)"' <<<"$processes" 2>/dev/null)
        [[ $pid == "$agent" ]] && continue
        say "pid $pid after the revert: ${state:-not listed by agentctl processes}"
        [[ $state != *"$ZLIB_HP_ID"* ]] || bad=1
    done
    [[ -z $bad ]] || { fail "agentctl processes still shows $ZLIB_HP_ID applied after the revert"; printf '%s\n' "$processes" | indent; return 1; }
    cexec kill -0 "$ZB_PID" || { fail "zbound-mt (pid $ZB_PID) is gone after the revert"; return 1; }
    [[ $(zgzip_props) == "$props_before" ]] || { fail "zgzip-svc.service was restarted by the revert: $(zgzip_props)"; return 1; }
    cexec kill "$ZB_PID"
}

# 11. A Debian security update with no restart (issue 11 §2). The library is the root file system's
#     own libexpat.so.1.8.10 (libexpat1 2.5.0-1+deb12u2, bookworm main, stripped); the fix is a
#     real CVE's, reallib/expat-CVE-2026-77214.diff (XML_ParseBuffer refuses a length beyond the
#     buffer XML_GetBuffer gave: no read past it into the heap); `hotpatch-pack build-deb` turns it
#     into a hotpatch for the library as Debian shipped it, and the release carries
#     bookworm-security's libexpat1 2.5.0-1+deb12u5. Two programs map the library: xmlbuf-svc.service
#     (reallib/xmlbuf-svc.c: the reproducer every 250 ms, DynamicUser=yes,
#     MemoryDenyWriteExecute=yes) and dbus-daemon (dbus.service, the container's system bus, which
#     reads its configuration with expat). Before: the reproducer reads past the buffer (error 4,
#     the parser left failed). After the publication: every process that mapped the library is
#     patched, keeps its PID, the reproducer is refused (error 41) and the parser still parses;
#     dbus-daemon still answers, and reloads its XML configuration through the patched code; the
#     agent installed 2.5.0-1+deb12u5 on disk (no reboot asked for), and a new process loads it.
EXPAT_RELEASED_VERSION=2.5.0-1+deb12u2   # what the diff and the update are paired with
EXPAT_HP_ID=expat-cve-2026-77214-hp
EXPAT_LEVEL=2
EXPAT_CVE=CVE-2026-77214
EXPAT_APPLIED=
xmlbuf_line() { cexec journalctl -b -u xmlbuf-svc.service -o cat -n 1 --no-pager 2>/dev/null | tail -n 1; }
unit_props() { cexec systemctl show -p NRestarts -p ExecMainPID -p ExecMainStartTimestampMonotonic "$1" | sort | tr '\n' ' '; }
# Container pids whose maps hold the targeted libexpat (by path; " (deleted)" once dpkg replaced it).
expat_mappers() { cexec sh -c "grep -lE ' $EXPAT_PATH_IN( \\(deleted\\))?\$' /proc/[0-9]*/maps 2>/dev/null" | cut -d/ -f3 | sort -n | tr '\n' ' '; }
build_id_of() { readelf -n "$1" 2>/dev/null | awk '/Build ID/ {print $3}'; }
dbus_call() { cexec busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus "$@" 2>&1; }

check_11() {
    local t_all t0 out line status props_before props_after dbus_before dbus_after dbus_pid svc_pid
    local mappers processes pid state agent bad= version fixed_id released_id index where events new_pid warm
    t_all=$(now_ms)
    released_id=$(build_id_of "$EXPAT_TARGET")
    mkdir -p "$E2E_WORK/expat-fixed"
    dpkg-deb -x "$EXPAT_FIXED_DEB" "$E2E_WORK/expat-fixed"
    fixed_id=$(build_id_of "$(find "$E2E_WORK/expat-fixed" -name 'libexpat.so.1.8.10' | head -n 1)")
    say "target: $EXPAT_PATH_IN in the container, libexpat1 $EXPAT_VERSION (bookworm main), build-id $released_id"
    say "update: $(basename "$EXPAT_FIXED_DEB") (bookworm-security), its libexpat.so.1.8.10 build-id ${fixed_id:-?}"
    [[ $EXPAT_VERSION == "$EXPAT_RELEASED_VERSION" ]] || {
        fail "the root file system has libexpat1 $EXPAT_VERSION; the fix (reallib/expat-CVE-2026-77214.diff) and the update ($EXPAT_FIXED_VERSION) are paired with $EXPAT_RELEASED_VERSION"; return 1; }
    [[ -n $fixed_id && $fixed_id != "$released_id" ]] || { fail "the update's library has no build-id of its own ('$fixed_id')"; return 1; }
    if cexec test -e /run/reboot-required; then fail "/run/reboot-required exists before the update (from an earlier check): cannot tell whether the update asks for a reboot"; return 1; fi
    status=$(status_json)
    say "agentctl status before: verdict=$(jq -r .verdict <<<"$status") hotpatch=$(jq -r '.hotpatch.id // "none"' <<<"$status") level $(jq -r '.hotpatch.level // "-"' <<<"$status")"

    # The two programs, before.
    t0=$(now_ms)
    cexec systemctl start xmlbuf-svc.service || { fail "xmlbuf-svc.service did not start"; return 1; }
    line=$(wait_line 'oversized=' 10 xmlbuf_line)
    [[ $line == *'oversized=4 '*'then=error(4)'* ]] \
        || { fail "before the update xmlbuf-svc should read past its buffer ('oversized=4 … then=error(4)'): '$line'"; evidence; return 1; }
    svc_pid=$(cexec systemctl show -p MainPID --value xmlbuf-svc.service)
    say "xmlbuf-svc.service (PID $svc_pid, uid $(cexec stat -c %u "/proc/$svc_pid"), MemoryDenyWriteExecute=$(cexec systemctl show -p MemoryDenyWriteExecute --value xmlbuf-svc.service)): $(cexec journalctl -b -u xmlbuf-svc.service -o cat --no-pager | grep -m1 'build-id')"
    say "before: $line"
    out=$(dbus_call GetId) || { fail "busctl call GetId (the system bus) failed before the update: $out"; return 1; }
    dbus_pid=$(cexec systemctl show -p MainPID --value dbus.service)
    say "dbus.service (dbus-daemon PID $dbus_pid): busctl call … GetId: $out"
    props_before=$(unit_props xmlbuf-svc.service)
    dbus_before=$(unit_props dbus.service)
    mappers=$(expat_mappers)
    say "processes mapping $EXPAT_PATH_IN: $(for pid in $mappers; do printf '%s(%s) ' "$pid" "$(cexec cat "/proc/$pid/comm" 2>/dev/null)"; done)($(secs_since "$t0"))"
    [[ " $mappers " == *" $svc_pid "* && " $mappers " == *" $dbus_pid "* ]] \
        || { fail "xmlbuf-svc (pid $svc_pid) and dbus-daemon (pid $dbus_pid) must both map $EXPAT_PATH_IN: $mappers"; return 1; }

    # The release: generated from Debian's source at the released version, carrying the update.
    [[ -e $E2E_CACHE/build-deb-expat.warm ]] && warm=warm || warm="cold: expat is built twice"
    say "hotpatch-pack build-deb --package $EXPAT_SOURCE --version $EXPAT_VERSION ($warm; work directory $E2E_CACHE/build-deb-expat) …"
    t0=$(now_ms)
    # The source package comes from the cache (--dsc: the host's apt needs no deb-src entry); the
    # shipped libexpat1 at the released version is downloaded by build-deb (--binary). The work
    # directory is the cache's: one run at a time uses it (the cache's lock, fd 9 of run).
    flock 9
    if ! "$PACK" build-deb --channel "$CHANNEL" --id "$EXPAT_HP_ID" --baseline deb12-b2 --level "$EXPAT_LEVEL" \
            --package "$EXPAT_SOURCE" --version "$EXPAT_VERSION" --dsc "$EXPAT_DSC" \
            --diff "$HERE/reallib/expat-CVE-2026-77214.diff" \
            --binary libexpat1 --with-deb "$EXPAT_FIXED_DEB" --install-build-deps \
            --work-dir "$E2E_CACHE/build-deb-expat" --cve "$EXPAT_CVE" \
            --description "expat XML_ParseBuffer: refuse a length beyond the buffer (no read past it); with libexpat1 $EXPAT_FIXED_VERSION" \
            --json >"$E2E_WORK/build-deb.json" 2>"$E2E_WORK/build-deb.log"; then
        flock -u 9
        fail "hotpatch-pack build-deb failed after $(secs_since "$t0") (last lines of its output):"
        tail -n 30 "$E2E_WORK/build-deb.log" | indent
        head -c 3000 "$E2E_WORK/build-deb.json" | indent
        return 1
    fi
    touch "$E2E_CACHE/build-deb-expat.warm"
    flock -u 9
    say "hotpatch-pack build-deb took $(secs_since "$t0"); steps: $(jq -r '.steps | map("\(.name) \(.seconds) s" + (if .reused then " (reused)" else "" end)) | join(", ")' "$E2E_WORK/build-deb.json" 2>&1)"
    say "its changes: $(jq -r '[.targets[]? | (.released | split("/") | last) as $t | .changes[]? | "\($t): \(.kind) \(.symbol)"] | join(", ")' "$E2E_WORK/build-deb.json" 2>&1)"
    index=$(jq -c --arg id "$EXPAT_HP_ID" '[.. | objects | select(.id? == $id and .kind? == "hotpatch")] | first' "$CHANNEL/index.json")
    jq -e --arg b "$released_id" 'any(.targets[]; .build_id == $b) and any(.files[]?; .type == "deb")' >/dev/null <<<"$index" \
        || { fail "the release in the channel must target build-id $released_id and carry the update as a deb: $index"; return 1; }
    say "release $EXPAT_HP_ID: targets $(jq -r '[.targets[] | "\(.build_id[0:12])… (\(.redirections | map(.symbol) | join(",")))"] | join(" ")' <<<"$index"), files $(jq -r '[.files[] | "\(.type) \(.path)"] | join(" ")' <<<"$index")"
    pack publish --channel "$CHANNEL" --private-key "$PUB/publisher.key"
    next_second
    t0=$(now_ms)
    publish_into_container
    say "published $EXPAT_HP_ID (baseline deb12-b2, level $EXPAT_LEVEL) into $CHANNEL_IN"

    # Applied live: the same processes, behaving fixed.
    line=$(wait_line 'oversized=41 ' 30 xmlbuf_line) \
        || { fail "xmlbuf-svc does not refuse the oversized length within 30 s: '$line'"; evidence; return 1; }
    [[ $line == *'then=ok'* ]] || { fail "after the fix the correct call must succeed ('then=ok'): '$line'"; evidence; return 1; }
    EXPAT_APPLIED=1
    say "after the fix ($(secs_since "$t0") after the publication): $line"
    # The package upgraded on disk by the agent, once the processes were patched.
    version=$(wait_line "installed $EXPAT_FIXED_VERSION" 60 cexec dpkg-query -W -f='${db:Status-Status} ${Version}' libexpat1) \
        || { fail "dpkg-query -W libexpat1 says '$version' 60 s after the publication; expected installed $EXPAT_FIXED_VERSION (by the agent)"; evidence; return 1; }
    say "dpkg-query -W libexpat1: $version ($(secs_since "$t0") after the publication); on disk: $EXPAT_PATH_IN build-id $(build_id_of "$E2E_MERGED$EXPAT_PATH_IN")"
    [[ $(build_id_of "$E2E_MERGED$EXPAT_PATH_IN") == "$fixed_id" ]] || { fail "$EXPAT_PATH_IN on disk is not the update's library"; return 1; }

    processes=$(cexec agentctl processes --json 2>&1)
    agent=$(cexec systemctl show -p MainPID --value "$AGENT_UNIT")
    for pid in $mappers; do
        [[ $pid == "$agent" ]] && { say "pid $pid is the agent itself (it never patches itself)"; continue; }
        state=$(jq -r --argjson pid "$pid" --arg id "$EXPAT_HP_ID" '.[] | select(.pid == $pid)
            | "\(.state) \(if any(.objects[]?; .hotpatch == $id) or .hotpatch == $id then $id else (.hotpatch // "-") end) pause=\(.pauseUsec // "-")µs"' <<<"$processes" 2>/dev/null)
        say "pid $pid ($(cexec cat "/proc/$pid/comm" 2>/dev/null)): ${state:-not listed by agentctl processes}"
        [[ $state == "patched $EXPAT_HP_ID "* ]] || bad=1
    done
    [[ -z $bad ]] || { fail "a process that mapped libexpat1 $EXPAT_VERSION is not patched with $EXPAT_HP_ID"; printf '%s\n' "$processes" | indent; evidence; return 1; }
    props_after=$(unit_props xmlbuf-svc.service)
    dbus_after=$(unit_props dbus.service)
    [[ $props_after == "$props_before" ]] || { fail "xmlbuf-svc.service was restarted: before '$props_before', after '$props_after'"; return 1; }
    [[ $dbus_after == "$dbus_before" ]] || { fail "dbus.service was restarted: before '$dbus_before', after '$dbus_after'"; return 1; }
    say "same processes: xmlbuf-svc.service $props_after; dbus.service $dbus_after"
    for unit in xmlbuf-svc.service dbus.service; do
        [[ $(cexec systemctl is-active "$unit") == active ]] || { fail "$unit is not active after the update"; return 1; }
    done
    # dbus-daemon still serves, and parses its XML configuration again through the patched code.
    out=$(dbus_call GetId) || { fail "busctl call GetId failed after the update: $out"; evidence; return 1; }
    say "busctl call … GetId: $out"
    out=$(dbus_call ReloadConfig) || { fail "busctl call … ReloadConfig (dbus-daemon parses its XML configuration with expat) failed after the update: $out"; evidence; return 1; }
    out=$(dbus_call GetId) || { fail "busctl call GetId failed after ReloadConfig: $out"; evidence; return 1; }
    [[ $(cexec systemctl show -p MainPID --value dbus.service) == "$dbus_pid" ]] || { fail "dbus-daemon's PID changed after ReloadConfig"; return 1; }
    say "busctl call … ReloadConfig, then GetId: $out (dbus-daemon PID $dbus_pid)"

    # No reboot, no exposure; the install in status and in the journal.
    if cexec test -e /run/reboot-required; then
        fail "the update wrote /run/reboot-required: $(cexec cat /run/reboot-required 2>&1 | tr '\n' ' ')"; return 1
    fi
    if ! kill -0 "$NSPAWN_PID" 2>/dev/null; then
        fail "the container is down (reboot = \"auto\" since check 6: the agent asked for a reboot)"; return 1
    fi
    # The agent records the install once dpkg is done: give it a moment past dpkg's own status.
    status=$(wait_status '(.fixedPackages // []) | any(.state == "installed")' 15)
    say "agentctl status after: verdict=$(jq -r .verdict <<<"$status") reboot.required=$(jq -r .reboot.required <<<"$status") hotpatch=$(jq -r '.hotpatch.id // "none"' <<<"$status") level $(jq -r '.hotpatch.level // "-"' <<<"$status"); no /run/reboot-required"
    jq -e '.verdict != "exposed" and .reboot.required == false' >/dev/null <<<"$status" \
        || { fail "after the update the verdict must not be exposed and no reboot required: $(jq -c '{verdict, reasons, reboot}' <<<"$status")"; return 1; }
    jq -e '.processes.vulnerable == 0' >/dev/null <<<"$status" \
        || { fail "agentctl status --json counts processes still running vulnerable code: $(jq -c .processes <<<"$status")"; evidence; return 1; }
    where=$(jq -c --arg id "$EXPAT_HP_ID" '.fixedPackages[]? | select(.hotpatch == $id)' <<<"$status")
    jq -e --arg v "$EXPAT_FIXED_VERSION" --arg old "$EXPAT_VERSION" '.state == "installed"
        and any(.packages[]; .name == "libexpat1" and .version == $v and .action == "installed" and .previousVersion == $old)' >/dev/null <<<"$where" \
        || { fail "agentctl status --json does not show libexpat1 $EXPAT_FIXED_VERSION installed (from $EXPAT_VERSION) by $EXPAT_HP_ID: fixedPackages $(jq -c '.fixedPackages' <<<"$status")"; return 1; }
    say "agentctl status --json: fixedPackages $where; processes $(jq -c .processes <<<"$status")"
    events=$(wait_journal_event "$PACKAGES_INSTALLED_ID" "$SINCE" 10 | jq -c '{MESSAGE_ID, PRIORITY, MESSAGE} + with_entries(select(.key | startswith("HOTPATCH")))')
    [[ $events == *libexpat1* ]] || { fail "the agent's journal has no packages-installed entry (MESSAGE_ID=$PACKAGES_INSTALLED_ID) naming libexpat1 since the publication: '$events'"; evidence; return 1; }
    say "journal (MESSAGE_ID=$PACKAGES_INSTALLED_ID):"; printf '%s\n' "$events" | indent

    # A new process loads the update from disk; the agent leaves it alone (it maps no target).
    new_pid=$(cexec sh -c "setsid /usr/local/bin/xmlbuf-svc --rounds 20 --interval-ms 250 >/var/log/xmlbuf-new.log 2>&1 </dev/null & echo \$!")
    [[ $new_pid =~ ^[0-9]+$ ]] || { fail "the new xmlbuf-svc process did not start: '$new_pid'"; return 1; }
    sleep 2.6   # more than one of the agent's scans (every 2 s in a container); it runs 5 s
    processes=$(cexec agentctl processes --json 2>&1)
    cexec kill -0 "$new_pid" 2>/dev/null || { fail "the new process $new_pid ended before agentctl processes was asked (a loaded machine?)"; return 1; }
    if jq -e --argjson pid "$new_pid" 'any(.[]; .pid == $pid)' >/dev/null <<<"$processes"; then
        fail "agentctl processes lists the new process $new_pid, which maps the updated library, not a target"; return 1
    fi
    wait_line gone 8 cexec sh -c "kill -0 $new_pid 2>/dev/null && echo running || echo gone" >/dev/null
    out=$(cat "$E2E_MERGED/var/log/xmlbuf-new.log")
    [[ $out == *"build-id $fixed_id"* && $out == *'oversized=41 '*'then=ok'* ]] \
        || { fail "a new process (pid $new_pid) does not load the update's library and behave fixed: $out"; return 1; }
    say "new process $new_pid (not listed by agentctl processes): $(head -n 1 <<<"$out" | cut -d' ' -f2-); $(tail -n 1 <<<"$out" | cut -d' ' -f2-)"
    say "check 11 in all: $(secs_since "$t_all")"
}

# 7. apt-get remove stops the service and keeps its state; purge removes it.
check_7() {
    local out active procs line_before line_after
    # Let the agent finish with the victim first (a process it is still patching would change).
    wait_status '.processes.pending == 0' 10 >/dev/null
    sleep 0.5
    line_before=$(victim_line)
    out=$(cexec apt-get remove -y -q hotpatch-agent 2>&1) || { fail "apt-get remove failed:"; printf '%s\n' "$out" | tail -n 10 | indent; return 1; }
    active=$(cexec systemctl is-active "$AGENT_UNIT")
    procs=$(cexec sh -c 'grep -lx hotpatch-agent /proc/[0-9]*/comm 2>/dev/null')
    say "after apt-get remove: is-active=$active, agent processes: ${procs:-none}"
    [[ $active != active && $active != activating && -z $procs ]] || { fail "the agent still runs after apt-get remove"; return 1; }
    cexec test -d /var/lib/hotpatch-agent || { fail "/var/lib/hotpatch-agent was removed by apt-get remove (state must be kept)"; return 1; }
    cexec test -f /etc/hotpatch-agent/keys/publisher.pub || { fail "/etc/hotpatch-agent/keys/publisher.pub was removed by apt-get remove"; return 1; }
    say "kept: /var/lib/hotpatch-agent ($(cexec ls /var/lib/hotpatch-agent | tr '\n' ' ')), /etc/hotpatch-agent/keys/publisher.pub"
    sleep 1
    line_after=$(victim_line)
    say "victim before the removal: $line_before"
    say "victim after the removal:  $line_after"
    [[ ${line_before% calls=*} == "${line_after% calls=*}" ]] \
        || { fail "the victim's behaviour changed when the agent was removed (applied hotpatches must stay)"; return 1; }
    out=$(cexec apt-get purge -y -q hotpatch-agent 2>&1) || { fail "apt-get purge failed:"; printf '%s\n' "$out" | tail -n 10 | indent; return 1; }
    local left=()
    cexec test -e /var/lib/hotpatch-agent && left+=(/var/lib/hotpatch-agent)
    cexec test -e /etc/hotpatch-agent && left+=("/etc/hotpatch-agent ($(cexec find /etc/hotpatch-agent | tr '\n' ' '))")
    cexec dpkg-query -W -f='${db:Status-Abbrev}' hotpatch-agent 2>/dev/null | grep -q '^i' && left+=("the package is still installed")
    if ((${#left[@]})); then fail "after apt-get purge, still there: ${left[*]}"; return 1; fi
    say "after apt-get purge: /var/lib/hotpatch-agent and /etc/hotpatch-agent are gone"
}
