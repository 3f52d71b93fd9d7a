# Shared by scripts/demo, scripts/test and scripts/setup-deps: checks that refuse early and clearly.
# Source it; it defines functions only.

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
