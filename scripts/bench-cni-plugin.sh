#!/usr/bin/env bash
# bench-cni-plugin.sh — cell-cni's own cost per call: the median wall time
# of ADD and of DEL of one pod on a bridge network that already holds N
# pods, the plugin called directly as a runtime would (environment and
# stdin, no client library in between), and the size of its nftables
# tables at each N.
#
#   scripts/bench-cni-plugin.sh                 # N_LIST="1 100", RUNS=20
#   N_LIST="1 10 100" RUNS=50 scripts/bench-cni-plugin.sh
#   BIN=target/debug/cell-cni scripts/bench-cni-plugin.sh
#
# Everything runs in a throwaway network and mount namespace with a
# private /run (pods are `ip netns add` namespaces there) and a temporary
# data directory: nothing is left on the machine. The comparison with
# Debian's reference plugins through cnitool is scripts/bench-cni.sh.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$repo/target/release/cell-cni}
N_LIST=${N_LIST:-"1 100"}
RUNS=${RUNS:-20}
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
conf="{\"cniVersion\":\"1.1.0\",\"name\":\"bench\",\"type\":\"cell-cni\",\"subnet\":\"10.64.0.0/16\",\"dataDir\":\"$WORK/state\"}"
call() { # call COMMAND CONTAINER NETNS
    printf '%s' "$conf" | CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=$3 CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin "$BIN" >/dev/null
}
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
have=0
printf '%-6s %-12s %-12s %-8s %-10s\n' "N" "ADD (ms)" "DEL (ms)" "rules" "elements"
for n in $N_LIST; do
    # Fill the network up to N-1 pods; the measured pod is the Nth.
    while [ $have -lt $((n - 1)) ]; do
        ip netns add "fill$have"; call ADD "fill$have" "/run/netns/fill$have"; have=$((have + 1))
    done
    ip netns add probe
    adds=(); dels=()
    for _ in $(seq "$RUNS"); do
        t0=$EPOCHREALTIME; call ADD probe /run/netns/probe; t1=$EPOCHREALTIME
        call DEL probe /run/netns/probe; t2=$EPOCHREALTIME
        adds+=("$(echo "($t1 - $t0) * 1000" | bc -l)"); dels+=("$(echo "($t2 - $t1) * 1000" | bc -l)")
    done
    call ADD probe /run/netns/probe
    rules=$(nft -j list ruleset | grep -o '"rule": {' | wc -l)
    elements=$(nft -j list ruleset | python3 -c 'import json,sys; print(sum(len(o.get("set", o.get("map", {})).get("elem", [])) for o in json.load(sys.stdin)["nftables"]))')
    call DEL probe /run/netns/probe
    ip netns del probe
    printf '%-6s %-12s %-12s %-8s %-10s\n' "$n" "$(printf '%s\n' "${adds[@]}" | median)" "$(printf '%s\n' "${dels[@]}" | median)" "$rules" "$elements"
done
EOF
echo "cell-cni: $BIN; RUNS=$RUNS per N; bridge network 10.64.0.0/16, vnet, NAT, anti-spoofing on" >&2
env WORK="$work" BIN="$BIN" N_LIST="$N_LIST" RUNS="$RUNS" \
    unshare --net --mount --propagation private bash "$work/inner.sh"
