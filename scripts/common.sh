# shellcheck shell=bash
# Shared by scripts/demo, scripts/test, scripts/setup-deps and packaging/build-deps: checks that
# refuse early and clearly, and installing what is missing. Source it; it defines functions only.

# say WHO TEXT: one line on stderr, prefixed with the script's name.
say() { printf '%s: %s\n' "$1" "$2" >&2; }

# require_root WHO: live patching attaches to other processes with ptrace and writes their code
# through /proc/PID/mem, which needs root (CAP_SYS_PTRACE); installing packages needs it too.
require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "$1" "must run as root: ptrace of other processes and apt-get need it. Try: sudo $0 ${*:2}"
        exit 2
    fi
}

# require_swift WHO: the Swift 6 toolchain is not a Debian package; it must be installed beforehand.
require_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        say "$1" "swift is not on PATH. Install the Swift 6 toolchain for Debian 12 (https://www.swift.org/install/linux/), put its usr/bin on PATH, and run this again. (If swift works for your user, sudo may have reset PATH: sudo env PATH=\"\$PATH\" $0)"
        exit 2
    fi
}

# install_missing WHO [--no-install-recommends] REQUIREMENT...: installs with apt-get (after
# apt-get update, for a fresh machine's empty or stale package lists) the Debian packages of the
# REQUIREMENTs that are missing, and says what it checked. A REQUIREMENT is PACKAGE, present when
# dpkg has it installed, or PACKAGE:PROBE, present when PROBE is there: an absolute path that
# exists, or else a command on PATH (so another package providing it counts too, e.g. pkgconf's
# pkg-config or clang as cc). Exits 2 when something is missing and this is not root, 1 when
# there is no apt-get or when apt-get does not make it present.
install_missing() {
    local who=$1 options=() requirement checked=() missing=()
    shift
    if [ "${1:-}" = --no-install-recommends ]; then options+=("$1"); shift; fi
    for requirement in "$@"; do
        checked+=("$(requirement_name "$requirement")")
        requirement_present "$requirement" || missing+=("${requirement%%:*}")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        printf -v requirement '%s, ' "${checked[@]}"
        say "$who" "present: ${requirement%, }; nothing to install"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        say "$who" "missing ${missing[*]}; run $0 as root to install them, or install them yourself: sudo apt-get install ${missing[*]}"
        exit 2
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "$who" "missing ${missing[*]}, and there is no apt-get to install them (this script targets Debian 12)"
        exit 1
    fi
    say "$who" "installing ${missing[*]} with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null \
        || ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${options[@]}" "${missing[@]}" </dev/null; then
        say "$who" "FAILED: apt-get could not install ${missing[*]} (its messages are above)"
        exit 1
    fi
    for requirement in "$@"; do
        if ! requirement_present "$requirement"; then
            say "$who" "FAILED: $(requirement_name "$requirement") is still missing after apt-get install ${missing[*]}"
            exit 1
        fi
    done
    say "$who" "installed ${missing[*]}"
}

# requirement_name REQUIREMENT: how install_missing names it: PACKAGE, or PACKAGE (PROBE).
requirement_name() {
    case $1 in
        *:*) printf '%s (%s)\n' "${1%%:*}" "${1#*:}" ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# requirement_present REQUIREMENT: whether install_missing would leave it alone.
requirement_present() {
    case $1 in
        *:/*) [ -e "${1#*:}" ] ;;
        *:*) command -v "${1#*:}" >/dev/null 2>&1 ;;
        *) dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'install ok installed' ;;
    esac
}
