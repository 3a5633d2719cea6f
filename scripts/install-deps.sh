#!/usr/bin/env bash
# Installs what cell needs on a Debian 12 machine, as root: the static
# busybox images are built from, nftables (and the library celld links),
# iproute2 and util-linux's unshare/nsenter for the sandboxes. Idempotent.
set -euo pipefail

# gcc and libc6-dev: the traffic tests build a small static packet forger.
# systemd: its systemd-analyze verifies the unit scripts/install.sh installs.
# iperf3, socat, netavark and iptables: scripts/bench-ports.sh (throughput, a
# userland relay for contrast, netavark 1.4 with its iptables driver).
packages=(busybox-static nftables libnftables-dev iproute2 util-linux procps gcc libc6-dev systemd
    iperf3 socat netavark iptables)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    for dir in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
        [ -x "$dir/cargo" ] && export PATH="$dir:$PATH"
    done
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cell needs a Rust toolchain (1.85 or newer, with cargo) on PATH" >&2
    exit 1
fi
