#!/usr/bin/env bash
# bench-cni-plugin.sh — cell-cni's own cost per call: the median wall time
# (and CPU time, user + system) of ADD and of DEL of one pod on a bridge
# network that already holds N pods, the plugin called directly as a runtime would (environment and
# stdin, no client library in between), and the number of nftables rules
# and set elements at each N. Beside it, the same for Debian's reference
# `bridge` plugin (with `host-local` IPAM, which it calls itself, and
# `ipMasq`), when `containernetworking-plugins` is installed
# (/usr/lib/cni): both are one call per ADD, measured in turn on the same
# machine, so the ratio holds on a busy machine where the absolute
# figures do not.
#
#   scripts/bench-cni-plugin.sh                 # N_LIST="1 100", RUNS=20
#   N_LIST="1 10 100" RUNS=50 scripts/bench-cni-plugin.sh
#   BIN=target/debug/cell-cni REFERENCE=0 scripts/bench-cni-plugin.sh
#
# Everything runs in throwaway network and mount namespaces with a
# private /run (pods are `ip netns add` namespaces there) and temporary
# data directories: nothing is left on the machine. The comparison with
# the whole reference chain (bridge, host-local, portmap) through cnitool
# is scripts/bench-cni.sh.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$repo/target/release/cell-cni}
N_LIST=${N_LIST:-"1 100"}
RUNS=${RUNS:-20}
REF_DIR=${REF_DIR:-/usr/lib/cni}
REFERENCE=${REFERENCE:-$([ -x "$REF_DIR/bridge" ] && echo 1 || echo 0)}
[ "$(id -u)" = 0 ] || { echo "bench-cni-plugin.sh: must run as root (namespaces)" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
    echo "building cell-cni (cargo build --release -p cell-cni)..." >&2
    (cd "$repo" && cargo build --release --quiet -p cell-cni)
fi
BIN=$(readlink -f "$BIN")
work=$(mktemp -d /tmp/bench-cni-plugin.XXXXXX)
trap 'rm -rf "$work"' EXIT

cat >"$work/inner.sh" <<'EOF'
set -euo pipefail
mount -t tmpfs bench-cni-run /run
mkdir -p /run/netns
ip link set lo up
# An uplink, so "nat": true finds a default route.
ip link add em0 type veth peer name em0peer
ip addr add 198.51.100.2/24 dev em0
ip link set em0 up; ip link set em0peer up
ip route add default via 198.51.100.1
if [ "$MODE" = cell ]; then
    conf="{\"cniVersion\":\"1.1.0\",\"name\":\"bench\",\"type\":\"cell-cni\",\"subnet\":\"10.64.0.0/16\",\"dataDir\":\"$WORK/state\"}"
    plugin=$BIN; cni_path=/opt/cni/bin
else
    conf="{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",\"type\":\"bridge\",\"bridge\":\"cni-ref0\",\"isGateway\":true,\"ipMasq\":true,\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.64.0.0/16\"}]],\"routes\":[{\"dst\":\"0.0.0.0/0\"}],\"dataDir\":\"$WORK/ref-ipam\"}}"
    plugin=$REF_DIR/bridge; cni_path=$REF_DIR
fi
call() { # call COMMAND CONTAINER NETNS
    printf '%s' "$conf" | CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=$3 CNI_IFNAME=eth0 CNI_PATH=$cni_path "$plugin" >/dev/null
}
TIMEFORMAT='%R %U %S'
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
have=0
printf '%-8s %-5s %-9s %-9s %-9s %-9s %-6s %-8s\n' "plugin" "N" "ADD ms" "ADD cpu" "DEL ms" "DEL cpu" "rules" "elements"
for n in $N_LIST; do
    # Fill the network up to N-1 pods; the measured pod is the Nth.
    while [ $have -lt $((n - 1)) ]; do
        ip netns add "fill$have"; call ADD "fill$have" "/run/netns/fill$have"; have=$((have + 1))
    done
    ip netns add probe
    adds=(); dels=(); add_cpu=(); del_cpu=()
    for _ in $(seq "$RUNS"); do
        # `time` gives the wall time and the CPU time (user + system) of the
        # call; the CPU time is what the call costs the machine, the wall
        # time adds the waits for the scheduler and the kernel.
        read -r wall user sys < <({ time call ADD probe /run/netns/probe; } 2>&1)
        adds+=("$(echo "$wall * 1000" | bc -l)"); add_cpu+=("$(echo "($user + $sys) * 1000" | bc -l)")
        read -r wall user sys < <({ time call DEL probe /run/netns/probe; } 2>&1)
        dels+=("$(echo "$wall * 1000" | bc -l)"); del_cpu+=("$(echo "($user + $sys) * 1000" | bc -l)")
    done
    call ADD probe /run/netns/probe
    rules=$(nft -j list ruleset | grep -o '"rule": {' | wc -l)
    elements=$(nft -j list ruleset | python3 -c 'import json,sys; print(sum(len(o.get("set", o.get("map", {})).get("elem", [])) for o in json.load(sys.stdin)["nftables"]))')
    call DEL probe /run/netns/probe
    ip netns del probe
    m() { printf '%s\n' "$@" | median; }
    printf '%-8s %-5s %-9s %-9s %-9s %-9s %-6s %-8s\n' "$MODE" "$n" "$(m "${adds[@]}")" "$(m "${add_cpu[@]}")" \
        "$(m "${dels[@]}")" "$(m "${del_cpu[@]}")" "$rules" "$elements"
done
EOF
echo "cell-cni: $BIN; RUNS=$RUNS per N; bridge network 10.64.0.0/16, vnet, NAT, anti-spoofing on" >&2
modes=cell
if [ "$REFERENCE" = 1 ]; then
    modes="cell bridge"
    echo "bridge: $REF_DIR/bridge with host-local and ipMasq on the same subnet" >&2
fi
for mode in $modes; do
    env WORK="$work" BIN="$BIN" N_LIST="$N_LIST" RUNS="$RUNS" MODE="$mode" REF_DIR="$REF_DIR" \
        unshare --net --mount --propagation private bash "$work/inner.sh" | if [ "$mode" = cell ]; then cat; else tail -n +2; fi
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
