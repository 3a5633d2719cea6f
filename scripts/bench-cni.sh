#!/usr/bin/env bash
# Benchmark: cell-cni against Debian's reference CNI plugins, both driven by
# upstream cnitool (CNI 1.3.0, the libcni that containerd and CRI-O use).
#
#   scripts/bench-cni.sh                  # RUNS=20 N=100, both chains
#   RUNS=5 N=20 scripts/bench-cni.sh      # a quick run
#   CHAINS=reference scripts/bench-cni.sh # only the reference chain
#                                         # (default: "null reference cell-cni")
#
# Two chains on the same conflist shape: one bridge network over
# 10.88.0.0/16 with NAT and the portMappings capability,
#   reference  bridge (isGateway, ipMasq) + host-local + portmap, the
#              containernetworking-plugins package (iptables for NAT and ports)
#   cell-cni   cell-cni with "network": "bridge", "driver": "vnet", "nat": true
#              (one nftables transaction of set elements per call)
#   null       a shell script that answers every call at once: the client's
#              own cost (cnitool's start, libcni, its result cache), the floor
#              under both
# For each chain and each port mode (none, and one port mapping per pod,
# passed as runtimeConfig the way containerd does): the median wall time of
# RUNS `cnitool add` and `cnitool del` of one pod on an otherwise empty
# bridge (N = 1), and again with N-1 other pods attached (N = 100 by
# default); the nftables rules (everything `nft list ruleset` shows, which
# includes iptables-nft's tables) and set elements, and the iptables rules
# (iptables-save, IPv4), once N pods are attached. The time is the whole
# client call: cnitool's start, libcni, and each plugin of the chain.
# Then cell-cni's ADD and DEL as a fraction of the reference chain's.
#
# Everything runs in throwaway namespaces (`unshare --net --mount --pid`,
# private tmpfs on /run and /var/lib/cni, where both chains keep their state),
# one per chain and port mode; the NAT uplink is a veth `em0` to an
# "upstream" namespace at 198.51.100.1. Nothing is sent anywhere.
#
# CELL_CNI: the cell-cni binary (default: target/release/cell-cni, built
# here with `cargo build --release -p cell-cni`). CNITOOL_SCRIPT: the real
# client's installer (default scripts/cni-tools/cni-real-client.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-20}
N=${N:-100}
CHAINS=${CHAINS:-null reference cell-cni}
PORT_MODES=${PORT_MODES:-none one-per-pod}
SUBNET_PREFIX=10.88

now_us() { echo "${EPOCHREALTIME/./}"; }

# The median of the numbers (microseconds) given, in milliseconds.
median_ms() {
    printf '%s\n' "$@" | sort -n |
        awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m / 1000}'
}

# ----------------------------------------------------------------- inner ---
# Runs inside a fresh namespace: one chain, one port mode; prints one line
#   RESULT chain ports add1 del1 addN delN nft_rules_N nft_elems_N ipt_rules_N nft_rules_1 ipt_rules_1
if [[ ${1:-} == --inner ]]; then
    chain=$2 plugin_dir=$3 conflist=$4 ports=$5 work=$6
    mount -t tmpfs bench-cni-run /run
    mkdir -p /var/lib/cni && mount -t tmpfs bench-cni-state /var/lib/cni
    mkdir -p /run/netns
    ip link set lo up

    # The NAT uplink: em0 to an upstream namespace, carrying the default route,
    # so that both chains find an interface to masquerade out of.
    touch /run/netns/upstream
    unshare --net=/run/netns/upstream true
    ip link add em0 type veth peer name up0
    ip link set up0 netns upstream
    ip -n upstream addr add 198.51.100.1/24 dev up0
    ip -n upstream link set up0 up
    ip addr add 198.51.100.2/24 dev em0
    ip link set em0 up
    ip route add default via 198.51.100.1

    # pod 0 is the one timed; pods 1..N-1 fill the bridge.
    mkdir -p "$work/ns"
    for i in $(seq 0 $((N - 1))); do
        touch "$work/ns/pod$i"
        unshare --net="$work/ns/pod$i" true
    done
    export CNI_PATH=$plugin_dir NETCONFPATH=$work/net.d CNI_IFNAME=eth0
    mkdir -p "$work/net.d"
    cp "$conflist" "$work/net.d/10-bench.conflist"
    cnitool=$CNITOOL

    # cnitool VERB POD: with a port mapping 20000+POD -> 80 when asked.
    call() {
        if [[ $ports == one-per-pod ]]; then
            CAP_ARGS="{\"portMappings\":[{\"hostPort\":$((20000 + $2)),\"containerPort\":80,\"protocol\":\"tcp\"}]}" \
                "$cnitool" "$1" bench "$work/ns/pod$2"
        else
            "$cnitool" "$1" bench "$work/ns/pod$2"
        fi
    }
    must_call() {
        if ! out=$(call "$@" 2>&1); then
            echo "bench-cni: $chain: cnitool $1 of pod $2 failed: $out" >&2
            exit 1
        fi
    }
    nft_rules() { nft -j list ruleset | python3 -c 'import json,sys; print(sum(1 for o in json.load(sys.stdin)["nftables"] if "rule" in o))'; }
    nft_elems() {
        nft -j list ruleset | python3 -c '
import json, sys
n = 0
for o in json.load(sys.stdin)["nftables"]:
    for kind in ("set", "map"):
        if kind in o:
            n += len(o[kind].get("elem", []))
print(n)'
    }
    ipt_rules() { iptables-save 2>/dev/null | grep -c '^-A' || true; }

    # timed ADD/DEL cycles of pod 0: prints "add_ms del_ms"
    cycle() {
        local adds=() dels=() t0 t1
        for _ in $(seq "$RUNS"); do
            t0=$(now_us)
            must_call add 0
            t1=$(now_us)
            adds+=($((t1 - t0)))
            t0=$(now_us)
            must_call del 0
            t1=$(now_us)
            dels+=($((t1 - t0)))
        done
        echo "$(median_ms "${adds[@]}") $(median_ms "${dels[@]}")"
    }

    # A first ADD/DEL makes the bridge (both chains keep it after the last DEL),
    # so that N = 1 times an attach to an existing, empty bridge.
    must_call add 0
    rules1=$(nft_rules) ipt1=$(ipt_rules)
    must_call del 0
    read -r add1 del1 < <(cycle)
    for i in $(seq 1 $((N - 1))); do must_call add "$i"; done
    must_call add 0
    rulesN=$(nft_rules) elemsN=$(nft_elems) iptN=$(ipt_rules)
    must_call del 0
    read -r addN delN < <(cycle)
    for i in $(seq 1 $((N - 1))); do must_call del "$i"; done
    echo "RESULT $chain $ports $add1 $del1 $addN $delN $rulesN $elemsN $iptN $rules1 $ipt1"
    exit 0
fi

# ----------------------------------------------------------------- outer ---
[[ $(id -u) == 0 ]] || {
    echo "bench-cni: must run as root (namespaces)" >&2
    exit 1
}
if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 2 || N > 1000)); then
    echo "bench-cni: N must be a number from 2 to 1000 (a bridge has at most 1024 ports), not '$N'" >&2
    exit 1
fi
if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 1)); then
    echo "bench-cni: RUNS must be a number of at least 1, not '$RUNS'" >&2
    exit 1
fi
bash scripts/install-deps.sh
CNITOOL_SCRIPT=${CNITOOL_SCRIPT:-scripts/cni-tools/cni-real-client.sh}
bash "$CNITOOL_SCRIPT" --install-only >/dev/null
export CNITOOL=${CNI_REAL_CLIENT_PREFIX:-/opt/cni-real-client}/bin/cnitool
if [[ ! -x /usr/lib/cni/bridge || ! -x /usr/lib/cni/portmap ]]; then
    apt-get install -y -qq --no-install-recommends containernetworking-plugins >/dev/null
fi
command -v iptables-save >/dev/null || apt-get install -y -qq --no-install-recommends iptables >/dev/null

work=$(mktemp -d /tmp/bench-cni.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [[ " $CHAINS " == *" cell-cni "* ]]; then
    if [[ -z ${CELL_CNI:-} ]]; then
        cargo build --release --quiet -p cell-cni
        CELL_CNI=$PWD/target/release/cell-cni
    fi
    [[ -x $CELL_CNI ]] || {
        echo "bench-cni: no cell-cni binary at '$CELL_CNI'" >&2
        exit 1
    }
    mkdir -p "$work/cell-bin"
    ln -s "$(readlink -f "$CELL_CNI")" "$work/cell-bin/cell-cni"
fi

mkdir -p "$work/null-bin"
cat >"$work/null-bin/null" <<'EOF'
#!/bin/sh
# answers every CNI call at once: ADD with an empty result, the rest with nothing
cat >/dev/null
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion": "1.0.0", "interfaces": [], "ips": []}'
[ "$CNI_COMMAND" = VERSION ] && echo '{"cniVersion": "1.0.0", "supportedVersions": ["1.0.0"]}'
exit 0
EOF
chmod +x "$work/null-bin/null"
cat >"$work/null.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "bench",
  "plugins": [ { "type": "null", "capabilities": {"portMappings": true} } ] }
EOF
cat >"$work/reference.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "bench",
  "plugins": [
    { "type": "bridge", "bridge": "cni-bench0", "isGateway": true, "ipMasq": true,
      "ipam": { "type": "host-local", "ranges": [[{"subnet": "$SUBNET_PREFIX.0.0/16"}]],
                "routes": [{"dst": "0.0.0.0/0"}] } },
    { "type": "portmap", "capabilities": {"portMappings": true} } ] }
EOF
cat >"$work/cell-cni.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "bench",
  "plugins": [
    { "type": "cell-cni", "network": "bridge", "driver": "vnet",
      "interface": "cni-bench0", "subnet": "$SUBNET_PREFIX.0.0/16", "nat": true,
      "capabilities": {"portMappings": true} } ] }
EOF

# the sandboxes cover /var/lib/cni with a tmpfs: it must exist to be covered
made_varlibcni=false
[[ -d /var/lib/cni ]] || { mkdir -p /var/lib/cni && made_varlibcni=true; }
trap 'rm -rf "$work"; if $made_varlibcni; then rmdir /var/lib/cni 2>/dev/null; fi' EXIT

results=()
for chain in $CHAINS; do
    case $chain in
        null) plugin_dir=$work/null-bin ;;
        reference) plugin_dir=/usr/lib/cni ;;
        cell-cni) plugin_dir=$work/cell-bin ;;
        *)
            echo "bench-cni: unknown chain '$chain' (null, reference, cell-cni)" >&2
            exit 1
            ;;
    esac
    for ports in $PORT_MODES; do
        echo "bench-cni: $chain, port mappings: $ports, N = 1 and $N, $RUNS runs each..." >&2
        mkdir -p "$work/$chain-$ports"
        line=$(unshare --net --mount --pid --fork --mount-proc --propagation private -- \
            bash "$0" --inner "$chain" "$plugin_dir" "$work/$chain.conflist" "$ports" "$work/$chain-$ports" |
            grep '^RESULT') || {
            echo "bench-cni: the $chain run failed" >&2
            exit 1
        }
        results+=("$line")
    done
done

echo
echo "cnitool add/del, median of $RUNS (ms); rules and elements with N pods attached"
printf '%-10s %-12s %8s %8s %8s %8s %10s %10s %10s %12s\n' chain ports "ADD N=1" "DEL N=1" "ADD N=$N" "DEL N=$N" \
    "nft rules" "elements" "iptables" "nft rules@1"
for line in "${results[@]}"; do
    read -r _ chain ports add1 del1 addN delN rulesN elemsN iptN rules1 _ <<<"$line"
    printf '%-10s %-12s %8s %8s %8s %8s %10s %10s %10s %12s\n' "$chain" "$ports" "$add1" "$del1" "$addN" "$delN" \
        "$rulesN" "$elemsN" "$iptN" "$rules1"
done

# cell-cni's time as a fraction of the reference chain's, per port mode
if [[ " $CHAINS " == *" reference "* && " $CHAINS " == *" cell-cni "* ]]; then
    echo
    for ports in $PORT_MODES; do
        ref=$(printf '%s\n' "${results[@]}" | awk -v p="$ports" '$2 == "reference" && $3 == p')
        cell=$(printf '%s\n' "${results[@]}" | awk -v p="$ports" '$2 == "cell-cni" && $3 == p')
        floor=$(printf '%s\n' "${results[@]}" | awk -v p="$ports" '$2 == "null" && $3 == p')
        awk -v r="$ref" -v c="$cell" -v f="$floor" -v n="$N" -v p="$ports" 'BEGIN {
            split(r, a, " "); split(c, b, " ");
            printf "ports %-12s cell-cni / reference: ADD %.2f (N=1) %.2f (N=%d), DEL %.2f (N=1) %.2f (N=%d)\n",
                p, b[4] / a[4], b[6] / a[6], n, b[5] / a[5], b[7] / a[7], n
            # the same above the client floor: what the plugins themselves cost
            if (f != "") {
                split(f, z, " ");
                printf "ports %-12s  above the null floor:  ADD %.2f (N=1) %.2f (N=%d), DEL %.2f (N=1) %.2f (N=%d)\n",
                    p, (b[4] - z[4]) / (a[4] - z[4]), (b[6] - z[6]) / (a[6] - z[6]), n,
                    (b[5] - z[5]) / (a[5] - z[5]), (b[7] - z[7]) / (a[7] - z[7]), n
            }
        }'
    done
fi
