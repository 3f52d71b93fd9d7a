# shellcheck shell=bash
# Helpers for packaging/e2e/run: the cache (tools and root file system), the container's life
# (overlay, boot, exec, reboot, teardown) and small utilities. Sourced, never run, after
# scripts/time-limit.sh (now_ms, secs_since).

E2E_CACHE=${E2E_CACHE:-/var/cache/hotpatch-agent-e2e}
E2E_SUITE=bookworm
E2E_VARIANT=minbase
E2E_INCLUDE=systemd,systemd-sysv,dbus,libsystemd0,procps
E2E_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf 'e2e: %s\n' "$*"; }
indent() { sed 's/^/e2e:   | /'; }
die() { printf 'e2e: FAILED: %s\n' "$*" >&2; exit 1; }

# The Debian mirror the host's apt uses for $E2E_SUITE: debootstrap builds the root file system
# from it, and the container's apt-get installs the package's dependencies from it. Taken from the
# host's apt sources only (no address is written here); when none has the suite, says where it
# looked and what to add, and fails (run it as mirror=$(host_mirror) || exit 1).
host_mirror() {
    local uri
    uri=$(apt_source_uri "$E2E_SUITE" /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    [[ -n $uri ]] || die "no Debian mirror for $E2E_SUITE in the host's apt sources: looked in /etc/apt/sources.list, /etc/apt/sources.list.d/*.list and /etc/apt/sources.list.d/*.sources for an enabled \"deb\" entry with suite $E2E_SUITE, component main and an http, https or file URI. Add one for your Debian mirror (e.g. the line \"deb http://<mirror>/debian $E2E_SUITE main\" in /etc/apt/sources.list.d/debian.list) and run again."
    printf '%s\n' "$uri"
}

# apt_source_uri SUITE FILE...: the URI of the first enabled "deb" entry for SUITE with component
# main in these apt source files (*.sources in deb822 form, others one-line), over http, https or
# file (what debootstrap can use); nothing when there is none. Files that do not exist are skipped.
apt_source_uri() {
    local suite=$1 file
    shift
    for file in "$@"; do
        [[ -f $file && -r $file ]] || continue
        if [[ $file == *.sources ]]; then
            awk -v suite="$suite" '
                function flush() {
                    if (found) return
                    if (types ~ /(^| )deb( |$)/ && suites ~ ("(^| )" suite "( |$)") && components ~ /(^| )main( |$)/ && enabled != "no")
                        for (i = 1; i <= n; i++) if (uri[i] ~ /^(https?|file):/) { print uri[i]; found = 1; exit }
                    types = suites = components = enabled = ""; n = 0
                }
                /^#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ { next }   # a continuation line (a Signed-By key block)
                {
                    name = tolower($0); sub(/:.*/, "", name)
                    value = $0; sub(/^[^:]*:[ \t]*/, "", value); gsub(/[ \t]+/, " ", value); sub(/ $/, "", value)
                    if (name == "types") types = value
                    else if (name == "suites") suites = value
                    else if (name == "components") components = value
                    else if (name == "enabled") enabled = tolower(value)
                    else if (name == "uris") n = split(value, uri, " ")
                }
                END { flush() }' "$file"
        else
            awk -v suite="$suite" '
                { sub(/#.*/, "") }
                $1 != "deb" { next }
                {
                    line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
                    if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
                    n = split(line, word, /[ \t]+/)
                    if (n < 3 || word[2] != suite || word[1] !~ /^(https?|file):/) next
                    for (i = 3; i <= n; i++) if (word[i] == "main") { print word[1]; exit }
                }' "$file"
        fi
    done | head -n 1
}

# --- tools: systemd-nspawn matching the host's libsystemd-shared, and debootstrap, unpacked privately

E2E_TOOLS=
ensure_tools() {
    local version dir tmp
    version=$(dpkg-query -W -f='${Version}' libsystemd-shared 2>/dev/null) \
        || die "libsystemd-shared is not installed on the host (systemd-nspawn needs it)"
    dir=$E2E_CACHE/tools/systemd-container_${version}
    if [[ ! -e $dir/.complete ]]; then
        log "tools: downloading systemd-container=$version and debootstrap into $dir"
        rm -rf "$dir"
        tmp=$(mktemp -d "$E2E_CACHE/tools/.dl.XXXXXX")
        # A fresh machine may have no package lists yet: refresh them once and try again.
        (cd "$tmp" && apt-get download -q "systemd-container=$version" debootstrap >/dev/null 2>"$tmp/apt.err") \
            || { apt-get update -q >/dev/null 2>>"$tmp/apt.err" \
                 && (cd "$tmp" && apt-get download -q "systemd-container=$version" debootstrap >/dev/null 2>>"$tmp/apt.err"); } \
            || { cat "$tmp/apt.err" >&2; rm -rf "$tmp"; die "apt-get download of the tools failed"; }
        mkdir -p "$tmp/root"
        for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
        mv "$tmp/root" "$dir"
        rm -rf "$tmp"
        touch "$dir/.complete"
    fi
    E2E_TOOLS=$dir
    export DEBOOTSTRAP_DIR=$dir/usr/share/debootstrap
}
nspawn() { "$E2E_TOOLS/usr/bin/systemd-nspawn" "$@"; }

# --- the root file system, built once per set of debootstrap parameters

E2E_ROOTFS=
ensure_rootfs() {
    local mirror key dir tmp t0
    mirror=$(host_mirror) || exit 1
    # Bump E2E_ROOTFS_RECIPE when the preparation below changes.
    local recipe="v1 $E2E_SUITE $E2E_VARIANT $E2E_INCLUDE $mirror"
    key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
    dir=$E2E_CACHE/rootfs-$key
    E2E_ROOTFS=$dir/root
    [[ -e $dir/.complete ]] && return 0
    t0=$(now_ms)
    log "rootfs: not cached; debootstrap --variant=$E2E_VARIANT --include=$E2E_INCLUDE $E2E_SUITE from $mirror (first run only)"
    rm -rf "$dir"
    tmp=$(mktemp -d "$E2E_CACHE/.rootfs.XXXXXX")
    if ! "$E2E_TOOLS/usr/sbin/debootstrap" --variant="$E2E_VARIANT" --include="$E2E_INCLUDE" \
            "$E2E_SUITE" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
        tail -n 30 "$tmp/debootstrap.log" >&2
        [[ -f $tmp/root/debootstrap/debootstrap.log ]] && tail -n 30 "$tmp/root/debootstrap/debootstrap.log" >&2
        rm -rf "$tmp"
        die "debootstrap failed"
    fi
    # Shrink and neutralise: no package lists or .debs, no machine id (each run writes its own),
    # the same apt sources as the host's main archive (apt-get install of the tested .deb may need
    # Debian's dependencies), no getty on the console.
    chroot "$tmp/root" apt-get clean
    rm -rf "$tmp/root"/var/lib/apt/lists/* "$tmp/root"/var/cache/apt/*.bin
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$E2E_SUITE" "$mirror" "$E2E_SUITE" >"$tmp/root/etc/apt/sources.list"
    : >"$tmp/root/etc/machine-id"
    rm -f "$tmp/root/var/lib/dbus/machine-id"
    mkdir -p "$tmp/root/etc/systemd/system"
    ln -sf /dev/null "$tmp/root/etc/systemd/system/console-getty.service"
    ln -sf /dev/null "$tmp/root/etc/systemd/system/getty@.service"
    printf 'e2e\n' >"$tmp/root/etc/hostname"
    cp "$tmp/debootstrap.log" "$tmp/debootstrap.log.kept" 2>/dev/null || true
    mv "$tmp" "$dir"
    touch "$dir/.complete"
    log "rootfs: built in $(secs_since "$t0"), $(du -sh "$dir/root" | cut -f1) at $dir"
}

# --- the source package of a library of the root file system (check 10 builds its fix from it)

# ensure_source BINARY_PACKAGE: unpacks the source package of the version of BINARY_PACKAGE that
# the cached root file system has installed (apt-get source, from a deb-src entry for the host's
# mirror, with apt state private to the cache: the host's apt configuration is not touched) and
# sets E2E_SOURCE_DIR to it, E2E_SOURCE_VERSION to "name version" and E2E_SOURCE_DSC to the .dsc,
# kept with its tarballs beside it (hotpatch-pack build-deb --dsc). Cached, like the root.
E2E_SOURCE_DIR= E2E_SOURCE_VERSION= E2E_SOURCE_DSC=
ensure_source() {
    local binary=$1 name version mirror dir apt tmp t0
    read -r name version < <(dpkg-query --admindir="$E2E_ROOTFS/var/lib/dpkg" -W \
        -f='${source:Package} ${source:Version}\n' "$binary" 2>/dev/null) \
        || die "$binary is not installed in the cached root file system $E2E_ROOTFS"
    E2E_SOURCE_VERSION="$name $version"
    dir=$E2E_CACHE/sources/${name}_${version#*:}
    E2E_SOURCE_DIR=$dir/src
    E2E_SOURCE_DSC=$dir/${name}_${version#*:}.dsc
    [[ -e $dir/.complete ]] && return 0
    t0=$(now_ms)
    mirror=$(host_mirror) || exit 1
    log "sources: apt-get source $name=$version from $mirror (first run only)"
    rm -rf "$dir"
    mkdir -p "$E2E_CACHE/sources"
    tmp=$(mktemp -d "$E2E_CACHE/sources/.dl.XXXXXX")
    apt=$tmp/apt
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
    printf 'deb-src %s %s main\n' "$mirror" "$E2E_SUITE" >"$apt/sources.list"
    local opts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
    if ! apt-get "${opts[@]}" update >"$tmp/apt.log" 2>&1 \
        || ! (cd "$tmp" && apt-get "${opts[@]}" source "$name=$version" >>"$tmp/apt.log" 2>&1); then
        tail -n 20 "$tmp/apt.log" >&2
        rm -rf "$tmp"
        die "apt-get source $name=$version failed (a deb-src entry for $mirror $E2E_SUITE main)"
    fi
    local unpacked
    unpacked=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name "$name-*" | head -n 1)
    [[ -n $unpacked ]] || { rm -rf "$tmp"; die "apt-get source $name=$version left no source tree in $tmp"; }
    mkdir -p "$dir"
    mv "$unpacked" "$E2E_SOURCE_DIR"
    # The .dsc and the files it lists (the tarballs): a source package that dpkg-source -x unpacks.
    find "$tmp" -mindepth 1 -maxdepth 1 -type f \( -name '*.dsc' -o -name '*.tar.*' -o -name '*.diff.gz' \) -exec mv {} "$dir/" \;
    rm -rf "$tmp"
    touch "$dir/.complete"
    log "sources: $name $version unpacked in $(secs_since "$t0") at $E2E_SOURCE_DIR"
}

# --- a binary package of another suite (check 11's bookworm-security update), from the host's apt

# ensure_deb PACKAGE VERSION: downloads PACKAGE=VERSION for the machine's architecture with the
# host's apt (`apt-get download`: its sources must reach the suite that has it, e.g.
# bookworm-security) into the cache once, and sets E2E_DEB to its path. Nothing is installed.
E2E_DEB=
ensure_deb() {
    local package=$1 version=$2 arch dir tmp
    arch=$(dpkg --print-architecture)
    dir=$E2E_CACHE/debs
    E2E_DEB=$dir/${package}_${version#*:}_${arch}.deb
    [[ -s $E2E_DEB ]] && return 0
    mkdir -p "$dir"
    tmp=$(mktemp -d "$dir/.dl.XXXXXX")
    if ! (cd "$tmp" && apt-get download -q "$package=$version" >"$tmp/apt.log" 2>&1) \
        && ! { apt-get update -q >>"$tmp/apt.log" 2>&1 && (cd "$tmp" && apt-get download -q "$package=$version" >>"$tmp/apt.log" 2>&1); }; then
        tail -n 10 "$tmp/apt.log" >&2
        rm -rf "$tmp"
        die "apt-get download $package=$version failed: the host's apt sources must reach the suite that has it (for $package $version: bookworm-security)"
    fi
    [[ -s $tmp/$(basename "$E2E_DEB") ]] || { ls "$tmp" >&2; rm -rf "$tmp"; die "apt-get download $package=$version left no $(basename "$E2E_DEB")"; }
    mv "$tmp/$(basename "$E2E_DEB")" "$E2E_DEB"
    rm -rf "$tmp"
    log "debs: downloaded $package $version ($(du -h "$E2E_DEB" | cut -f1)) into $dir"
}

# --- one test container: an overlay over the cached root, booted with systemd-nspawn

E2E_WORK=        # temporary folder of this run (overlay upper/work, logs, channel staging)
E2E_MERGED=      # the overlay's mount point: the container's root as seen from here
E2E_NAME=        # machine name
E2E_CGROUP=      # the cgroup (v2) nspawn runs in
NSPAWN_PID=      # systemd-nspawn, a child of this script
LEADER=          # the container's PID 1, as seen from here
E2E_BOOTS=0

# Mounts the overlay over the cached root and gives it a random machine id.
make_overlay() {
    mkdir -p "$E2E_WORK/upper" "$E2E_WORK/ovl-work" "$E2E_WORK/merged"
    E2E_MERGED=$E2E_WORK/merged
    mount -n -t overlay overlay \
        -o "lowerdir=$E2E_ROOTFS,upperdir=$E2E_WORK/upper,workdir=$E2E_WORK/ovl-work" "$E2E_MERGED" \
        || die "cannot mount the overlay over $E2E_ROOTFS"
    tr -d '-' </proc/sys/kernel/random/uuid >"$E2E_MERGED/etc/machine-id"
}

# Boots the container (again, on the same overlay); returns once systemd says the system runs,
# 1 with the console's last lines when it does not. Arguments go to the container's init: in a
# container systemd takes them as its kernel command line (it reads PID 1's, not /proc/cmdline).
# Capabilities: nspawn's default set lacks CAP_NET_ADMIN (netlink process events) and
# CAP_CHECKPOINT_RESTORE (/proc/PID/map_files), which a VM or a host gives a root service.
boot_container() {
    local t0 deadline state
    t0=$(now_ms)
    E2E_BOOTS=$((E2E_BOOTS + 1))
    # nspawn needs a cgroup of its own in the unified (v2) hierarchy; this host has a hybrid layout.
    local unified=/sys/fs/cgroup/unified
    [[ -d $unified ]] || unified=/sys/fs/cgroup
    E2E_CGROUP=$unified/hotpatch-agent-e2e-$$
    mkdir -p "$E2E_CGROUP"
    (
        echo "$BASHPID" >"$E2E_CGROUP/cgroup.procs"
        # SYSTEMD_SECCOMP=0: no seccomp filter of nspawn's own on the container. The kernel refuses
        # PTRACE_SECCOMP_GET_FILTER to a tracer that is itself under seccomp (EACCES), and the agent
        # must read its targets' filters (MemoryDenyWriteExecute=yes is one); on a VM or a real
        # host the agent runs without a filter. Services inside still get theirs from systemd.
        exec env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_SECCOMP=0 "$E2E_TOOLS/usr/bin/systemd-nspawn" \
            --boot --register=no --keep-unit --console=read-only --machine="$E2E_NAME" \
            --capability=CAP_NET_ADMIN,CAP_CHECKPOINT_RESTORE -D "$E2E_MERGED" "$@"
    ) >"$E2E_WORK/console-$E2E_BOOTS.log" 2>&1 </dev/null &
    NSPAWN_PID=$!
    LEADER=
    deadline=$(( $(now_ms) + 60000 ))
    while [[ -z $LEADER ]]; do
        kill -0 "$NSPAWN_PID" 2>/dev/null || { console_tail 40 | indent; log "FAILED: systemd-nspawn exited during boot"; return 1; }
        (( $(now_ms) < deadline )) || { log "FAILED: no container PID 1 after 60 s"; return 1; }
        LEADER=$(find_leader "$NSPAWN_PID")
        [[ -n $LEADER ]] || sleep 0.05
    done
    # Wait for systemd to finish booting (it may report "degraded": say which unit failed).
    until state=$(cexec timeout 60 systemctl is-system-running --wait 2>/dev/null); [[ $state == running || $state == degraded ]]; do
        kill -0 "$NSPAWN_PID" 2>/dev/null || { LEADER=; console_tail 40 | indent; log "FAILED: the container exited during boot"; return 1; }
        (( $(now_ms) < deadline )) || { console_tail 20 | indent; log "FAILED: systemd in the container is not up after 60 s (state: $state)"; return 1; }
        sleep 0.1
    done
    if [[ $state == degraded ]]; then
        log "boot $E2E_BOOTS: system degraded; failed units: $(cexec systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
    fi
    log "boot $E2E_BOOTS: container up (PID 1 = host PID $LEADER${*:+, kernel command line: $*}) in $(secs_since "$t0")"
}

# The last lines the container printed on its console (without colours).
console_tail() { tail -n "$1" "$E2E_WORK/console-$E2E_BOOTS.log" | sed 's/\x1b\[[0-9;]*m//g'; }

# The container's PID 1: a process under nspawn whose innermost pid is 1.
find_leader() {
    local parent=$1 pid status
    for status in /proc/[0-9]*/status; do
        pid=${status#/proc/}; pid=${pid%/status}
        [[ $pid == "$parent" ]] && continue
        if awk -v p="$parent" '$1=="PPid:" && $2==p {pp=1} $1=="NSpid:" && $NF==1 && NF>2 {ns=1} END {exit !(pp && ns)}' "$status" 2>/dev/null; then
            echo "$pid"; return 0
        fi
    done
}

# Runs a command inside the container, as root, in all of its namespaces (its PID 1's view).
cexec() {
    timeout --kill-after=5 "${E2E_CMD_TIMEOUT:-120}" nsenter --target "$LEADER" --all --root --wd -- /usr/bin/env -i PATH="$E2E_PATH" LANG=C.UTF-8 TERM=dumb \
        SYSTEMD_PAGER= SYSTEMD_COLORS=0 DEBIAN_FRONTEND=noninteractive "$@"
}

# Waits for nspawn to exit (after a reboot or poweroff inside); sets E2E_EXIT to its exit status
# ("timeout" if it still runs after $1 seconds). Not in a subshell: only this shell can wait for it.
E2E_EXIT=
wait_container_exit() {
    local timeout_s=$1 deadline
    deadline=$(( $(now_ms) + timeout_s * 1000 ))
    while kill -0 "$NSPAWN_PID" 2>/dev/null; do
        if (( $(now_ms) >= deadline )); then E2E_EXIT=timeout; return 1; fi
        sleep 0.1
    done
    E2E_EXIT=0; wait "$NSPAWN_PID" || E2E_EXIT=$?
    NSPAWN_PID=; LEADER=
    cleanup_cgroup
}

cleanup_cgroup() {
    [[ -n $E2E_CGROUP && -d $E2E_CGROUP ]] || return 0
    # Depth first: the container's systemd made sub-cgroups under ours.
    find "$E2E_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
}

# Kills the container if it runs, unmounts the overlay, removes the run's folder. Keeps the cache.
teardown() {
    if [[ -n $LEADER ]]; then kill -KILL "$LEADER" 2>/dev/null || true; fi
    if [[ -n $NSPAWN_PID ]]; then
        local i
        for i in $(seq 50); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
        wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    cleanup_cgroup
    if [[ -n $E2E_MERGED ]] && mountpoint -q "$E2E_MERGED"; then umount -n "$E2E_MERGED" || umount -n -l "$E2E_MERGED" || true; fi
    if [[ -n $E2E_WORK && -d $E2E_WORK && -z ${E2E_KEEP:-} ]]; then rm -rf "$E2E_WORK"; fi
    [[ -n ${E2E_KEEP:-} && -n $E2E_WORK ]] && log "kept $E2E_WORK (E2E_KEEP set)"
}
