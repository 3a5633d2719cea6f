#!/usr/bin/env bash
# Benchmark of published ports (issue 8), in a sandbox namespace
# (scripts/sandbox.sh), release build. Prints:
#
# 1. Attach with one published port as the published ports grow: N_MAX
#    containers (default 1000) started one by one with
#    `cell run -d -l vnet -n benchnet -p PORT:80 busybox sleep ...`, each
#    timed (the whole command); at N = 1, 100, 1000 the median of the ten
#    runs around N, celld's nftables step of those attaches (one
#    transaction: the endpoint's elements and its two port elements), and
#    the number of nftables rules and of port map elements.
# 2. netavark (Debian's 1.4, /usr/lib/podman/netavark, iptables driver) for
#    contrast: `netavark setup` of NV_MAX containers (default 100) with one
#    port each on one bridge, run only inside this sandbox (it leaves rules
#    and sysctls behind); the median setup time around 1 and NV_MAX, and
#    the nftables lines of its ruleset with 0 and NV_MAX ports.
# 3. Throughput (iperf3, TCP, IPERF_SECONDS each, default 5) from an
#    "outside" namespace to a container: through its published port (DNAT),
#    to its own address (routed), and through a `socat` relay on the host
#    (a userland proxy, as docker-proxy is), with the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh
N_MAX=${N_MAX:-1000}
NV_MAX=${NV_MAX:-100}
IPERF_SECONDS=${IPERF_SECONDS:-5}
NETAVARK=${NETAVARK:-/usr/lib/podman/netavark}
if ! [[ $N_MAX =~ ^[0-9]+$ ]] || ((N_MAX < 10 || N_MAX > 1000)); then
    echo "N_MAX must be a number from 10 to 1000 (a bridge has at most 1024 ports), not '$N_MAX'" >&2
    exit 1
fi
export CELL_LOG=${CELL_LOG:-info,cell_net=debug}
start_celld
cell() { "$CELL_BIN/cell" "$@"; }

median_ms() {
    printf '%s\n' "$@" | sort -n |
        awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m / 1000}'
}
count_rules() { nft -j list ruleset | grep -o '{"rule": *{' | wc -l; }
# Elements of cell's port maps (two per published port: address and port).
count_port_elements() {
    nft -j list table inet cell | python3 -c '
import json, sys
maps = [o["map"] for o in json.load(sys.stdin)["nftables"] if "map" in o]
print(sum(len(m.get("elem", [])) for m in maps if "ports" in m["name"]))'
}
# The window of ten around N: lo..hi, 1-based.
window() {
    local n=$1 max=$2 lo
    lo=$((n - 4))
    ((lo > max - 9)) && lo=$((max - 9))
    ((lo < 1)) && lo=1
    echo "$lo $((lo + 9))"
}

echo "published ports benchmark: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cell image create busybox >/dev/null 2>&1
cell network create -t bridge --subnet 10.64.0.0/16 benchnet >/dev/null
echo "no container: $(count_rules) nftables rules"

checkpoints=()
for c in 1 100 1000; do ((c <= N_MAX)) && checkpoints+=("$c"); done
[[ " ${checkpoints[*]} " == *" $N_MAX "* ]] || checkpoints+=("$N_MAX")
declare -A rules_at elements_at
times=()
for i in $(seq "$N_MAX"); do
    t0=${EPOCHREALTIME/./}
    cell run -d --name "c$i" -l vnet -n benchnet -p "$((20000 + i)):80" busybox sleep 1000000 >/dev/null 2>&1
    t1=${EPOCHREALTIME/./}
    times+=($((t1 - t0)))
    if [[ " ${checkpoints[*]} " == *" $i "* ]]; then
        rules_at[$i]=$(count_rules)
        elements_at[$i]=$(count_port_elements)
    fi
    ((i % 100 == 0)) && echo "started $i/$N_MAX containers with a published port"
done
mapfile -t steps < <(sed -n 's/.* attach .*steps=//p' "$CELL_TMP/celld.log")
step_ms() {
    local step=$1 lo=$2 hi=$3 values=()
    ((${#steps[@]} >= hi)) || { echo "-"; return; }
    for ((j = lo - 1; j < hi; j++)); do
        values+=("$(grep -o "$step=[0-9]*" <<<"${steps[j]}" | cut -d= -f2)")
    done
    median_ms "${values[@]}"
}
# The whole kernel work of attaches lo..hi (the four steps summed), in ms.
attach_ms() {
    local lo=$1 hi=$2 values=()
    ((${#steps[@]} >= hi)) || { echo "-"; return; }
    for ((j = lo - 1; j < hi; j++)); do
        values+=("$(grep -o '=[0-9]*us' <<<"${steps[j]}" | tr -dc '0-9\n' | paste -sd+ | bc)")
    done
    median_ms "${values[@]}"
}
echo
echo "cell run -d -p PORT:80 (whole command), celld's kernel work of the attach (nftables,"
echo "veth, host side, inside) and its nftables step, median of ten around N (ms):"
printf '%-6s %-10s %8s %8s %9s %7s %14s\n' N runs run attach nftables rules "port elements"
for c in "${checkpoints[@]}"; do
    read -r lo hi < <(window "$c" "$N_MAX")
    printf '%-6s %-10s %8s %8s %9s %7s %14s\n' "$c" "$lo-$hi" "$(median_ms "${times[@]:lo-1:10}")" \
        "$(attach_ms "$lo" "$hi")" "$(step_ms firewall "$lo" "$hi")" "${rules_at[$c]}" "${elements_at[$c]}"
done
cell_attach_1=$(attach_ms 1 10)

# Throughput, with the containers of part 1 still there: c1 serves iperf3
# in its namespace (the host's binary), reached from an "outside"
# namespace behind the uplink em0.
ip netns add outside
ip link add em0 type veth peer name up1 netns outside
ip addr add 198.51.100.2/24 dev em0
ip link set em0 up
ip netns exec outside sh -c 'ip link set lo up; ip link set up1 up; ip addr add 198.51.100.1/24 dev up1'
read -r c1_ip c1_pid < <(cell inspect c1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["container_endpoints"][0]["ip_address"], d["container"]["pid"])')
ip netns exec outside ip route add 10.64.0.0/16 via 198.51.100.2
nsenter --net=/proc/"$c1_pid"/ns/net iperf3 -s -p 80 -D --logfile "$CELL_TMP/iperf3.log"
socat TCP-LISTEN:25201,fork,reuseaddr TCP:"$c1_ip":80 2>/dev/null &
on_exit "kill $! 2>/dev/null"
for _ in $(seq 100); do nsenter --net=/proc/"$c1_pid"/ns/net ss -ltn | grep -q ':80 ' && break; sleep 0.05; done
gbps() {
    ip netns exec outside iperf3 -c "$1" -p "$2" -t "$IPERF_SECONDS" -J |
        python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}
direct=$(gbps "$c1_ip" 80)
published=$(gbps 198.51.100.2 20001)
relayed=$(gbps 198.51.100.2 25201)
echo
echo "throughput from outside to c1 (iperf3, TCP, $IPERF_SECONDS s each, Gbit/s):"
printf '  %-34s %8s\n' "container's own address (routed)" "$direct"
printf '  %-34s %8s  (%s x direct)\n' "published port (DNAT)" "$published" \
    "$(awk -v a="$published" -v b="$direct" 'BEGIN {printf "%.2f", a / b}')"
printf '  %-34s %8s  (%s x direct)\n' "socat relay on the host" "$relayed" \
    "$(awk -v a="$relayed" -v b="$direct" 'BEGIN {printf "%.2f", a / b}')"

# netavark, in a namespace of its own inside the sandbox.
if [[ ! -x $NETAVARK ]]; then
    echo "netavark not found at $NETAVARK; skipped"
    exit 0
fi
netavark_part() {
    set -euo pipefail
    ip link set lo up
    local conf=/tmp/netavark-bench-$$ times=() i ns id
    mkdir -p "$conf"
    echo "netavark: $("$NETAVARK" --version), $(nft list ruleset 2>/dev/null | wc -l) nft lines before"
    for i in $(seq "$NV_MAX"); do
        ns=nv$i
        ip netns add "$ns"
        id=$(printf '%064x' "$i")
        cat >"$conf/c$i.json" <<EOF
{"container_id": "$id", "container_name": "nv$i",
 "networks": {"bench": {"static_ips": ["10.90.$((i / 250)).$((i % 250 + 2))"], "interface_name": "eth0"}},
 "network_info": {"bench": {"name": "bench", "id": "$(printf '%064x' 4242)", "driver": "bridge",
   "network_interface": "nvbr0", "subnets": [{"subnet": "10.90.0.0/16", "gateway": "10.90.0.1"}],
   "ipv6_enabled": false, "internal": false, "dns_enabled": false}},
 "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": $((30000 + i)), "range": 1, "protocol": "tcp"}]}
EOF
        t0=${EPOCHREALTIME/./}
        "$NETAVARK" --config "$conf" setup "/run/netns/$ns" <"$conf/c$i.json" >/dev/null
        t1=${EPOCHREALTIME/./}
        times+=($((t1 - t0)))
        if ((i == 1)); then echo "netavark: $(nft list ruleset 2>/dev/null | wc -l) nft lines with 1 port"; fi
    done
    echo "netavark: $(nft list ruleset 2>/dev/null | wc -l) nft lines with $NV_MAX ports"
    read -r lo hi < <(window 1 "$NV_MAX")
    local first last
    first=$(median_ms "${times[@]:lo-1:10}")
    read -r lo hi < <(window "$NV_MAX" "$NV_MAX")
    last=$(median_ms "${times[@]:lo-1:10}")
    echo "netavark setup with one port, median of ten around N=1: $first ms, around N=$NV_MAX: $last ms"
    echo "netavark setup / cell's attach (kernel work, both with one port) at N=1:" \
        "$(awk -v a="$first" -v b="$cell_attach_1" 'BEGIN {printf "%.0f", a / b}')x"
}
export -f netavark_part median_ms window
export NETAVARK NV_MAX cell_attach_1
echo
unshare --net bash -c netavark_part
