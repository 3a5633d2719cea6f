#!/usr/bin/env bash
# Benchmark: cell-cni against Debian's reference CNI plugins, both driven by
# upstream cnitool (CNI 1.3.0, the libcni that containerd and CRI-O use).
#
#   scripts/bench-cni.sh                        # RUNS=20 POINTS="1 2 100"
#   RUNS=5 POINTS="1 20" scripts/bench-cni.sh   # a quick run
#   CHAINS=reference scripts/bench-cni.sh       # one chain (default: "null reference cell-cni")
#
# The chains, on the same conflist shape: one bridge network over
# 10.88.0.0/16 with NAT and the portMappings capability,
#   reference  bridge (isGateway, ipMasq) + host-local + portmap, the
#              containernetworking-plugins package (iptables for NAT and ports)
#   cell-cni   cell-cni with "network": "bridge", "driver": "vnet", "nat": true
#              (one nftables transaction of set elements per call)
#   null       a shell script that answers every call at once: the client's
#              own cost (cnitool's start, libcni, its result cache), the floor
#              under both
# For each chain and each port mode (none, and one port mapping per pod,
# passed as runtimeConfig the way containerd does), and for each N of
# POINTS: the median wall time of RUNS `cnitool add` and `cnitool del` of
# one pod while N-1 other pods are attached (so N = 1 is the node's only
# pod: cell-cni makes its bridge and tables at that ADD and removes them at
# that DEL, the reference bridge plugin makes its bridge once and keeps
# it); and with N pods attached, the nftables rules (all that `nft list
# ruleset` shows, iptables-nft's tables included) and set elements, and
# the iptables rules (iptables-save, IPv4). The wall time is the whole
# client call: cnitool's start, libcni, and each plugin of the chain; the
# CPU time is theirs too (user + system, from wait4), which a busy machine
# does not inflate as it does the wall time. Last, cell-cni's ADD and DEL
# as a fraction of the reference chain's, as measured and above the null
# floor (each chain's time less the null chain's).
#
# Everything runs in throwaway namespaces (`unshare --net --mount --pid`,
# private tmpfs on /run and /var/lib/cni, where all chains keep their
# state), one per chain and port mode; the NAT uplink is a veth `em0` to an
# "upstream" namespace at 198.51.100.1. Nothing is sent anywhere.
#
# CELL_CNI: the cell-cni binary (default: target/release/cell-cni, built
# here with `cargo build --release -p cell-cni`). CNITOOL_SCRIPT: the real
# client's installer (default scripts/cni-tools/cni-real-client.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-20}
POINTS=${POINTS:-1 2 100}
CHAINS=${CHAINS:-null reference cell-cni}
PORT_MODES=${PORT_MODES:-none one-per-pod}

# ----------------------------------------------------------------- inner ---
# Runs inside a fresh namespace: one chain, one port mode; prints a line
#   RESULT chain ports N add_wall add_cpu del_wall del_cpu nft_rules nft_elements iptables_rules
# (times in ms) for each N of POINTS.
if [[ ${1:-} == --inner ]]; then
    chain=$2 plugin_dir=$3 conflist=$4 ports=$5 work=$6
    mount -t tmpfs bench-cni-run /run
    mount -t tmpfs bench-cni-state /var/lib/cni
    mkdir -p /run/netns
    ip link set lo up

    # The NAT uplink: em0 to an upstream namespace, carrying the default route,
    # so that every chain finds an interface to masquerade out of.
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
    max=$(printf '%s\n' $POINTS | sort -n | tail -1)
    mkdir -p "$work/ns" "$work/net.d"
    for i in $(seq 0 $((max - 1))); do
        touch "$work/ns/pod$i"
        unshare --net="$work/ns/pod$i" true
    done
    export CNI_PATH=$plugin_dir NETCONFPATH=$work/net.d CNI_IFNAME=eth0
    cp "$conflist" "$work/net.d/10-bench.conflist"

    # cnitool VERB POD: with a port mapping 20000+POD -> 80 when asked.
    call() {
        if [[ $ports == one-per-pod ]]; then
            CAP_ARGS="{\"portMappings\":[{\"hostPort\":$((20000 + $2)),\"containerPort\":80,\"protocol\":\"tcp\"}]}" \
                "$CNITOOL" "$1" bench "$work/ns/pod$2"
        else
            "$CNITOOL" "$1" bench "$work/ns/pod$2"
        fi
    }
    must_call() {
        if ! out=$(call "$@" 2>&1); then
            echo "bench-cni: $chain: cnitool $1 of pod $2 failed: $out" >&2
            exit 1
        fi
    }
    nft_rules() {
        nft -j list ruleset | python3 -c 'import json, sys; print(sum("rule" in o for o in json.load(sys.stdin)["nftables"]))'
    }
    nft_elements() {
        nft -j list ruleset | python3 -c '
import json, sys
print(sum(len(o[k].get("elem", [])) for o in json.load(sys.stdin)["nftables"] for k in ("set", "map") if k in o))'
    }
    iptables_rules() { iptables-save 2>/dev/null | grep -c '^-A' || true; }

    attached=0 # pods 1..attached are attached
    for n in $(printf '%s\n' $POINTS | sort -n); do
        while ((attached < n - 1)); do
            attached=$((attached + 1))
            must_call add "$attached"
        done
        must_call add 0
        rules=$(nft_rules) elements=$(nft_elements) ipt=$(iptables_rules)
        must_call del 0
        times=$(python3 - "$work/ns/pod0" "$ports" <<'EOF'
# RUNS add/del cycles of pod 0: the medians (ms) of each call's wall time
# and CPU time (user + system of cnitool and the plugins it waited for)
import json, os, statistics, subprocess, sys, time
netns, ports = sys.argv[1:3]
env = dict(os.environ)
if ports == "one-per-pod":
    env["CAP_ARGS"] = json.dumps({"portMappings": [{"hostPort": 20000, "containerPort": 80, "protocol": "tcp"}]})
def timed(verb):
    t0 = time.perf_counter()
    child = subprocess.Popen([os.environ["CNITOOL"], verb, "bench", netns], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = 0  # reaped above
    if status != 0:
        sys.exit("cnitool %s failed (status %d)" % (verb, status))
    return wall * 1000, (usage.ru_utime + usage.ru_stime) * 1000
calls = {"add": [], "del": []}
for _ in range(int(os.environ["RUNS"])):
    for verb in ("add", "del"):
        calls[verb].append(timed(verb))
print(" ".join("%.2f" % statistics.median(t[i] for t in calls[verb]) for verb in ("add", "del") for i in (0, 1)))
EOF
        ) || {
            echo "bench-cni: $chain: the timed calls failed" >&2
            exit 1
        }
        echo "RESULT $chain $ports $n $times $rules $elements $ipt"
    done
    for i in $(seq 1 "$attached"); do must_call del "$i"; done
    exit 0
fi

# ----------------------------------------------------------------- outer ---
[[ $(id -u) == 0 ]] || {
    echo "bench-cni: must run as root (namespaces)" >&2
    exit 1
}
for n in $POINTS; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 1000)); then
        echo "bench-cni: each of POINTS must be a number from 1 to 1000 (a bridge has at most 1024 ports), not '$n'" >&2
        exit 1
    fi
done
if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 1)); then
    echo "bench-cni: RUNS must be a number of at least 1, not '$RUNS'" >&2
    exit 1
fi
bash scripts/install-deps.sh
bash "${CNITOOL_SCRIPT:-scripts/cni-tools/cni-real-client.sh}" --install-only >/dev/null
export CNITOOL=${CNI_REAL_CLIENT_PREFIX:-/opt/cni-real-client}/bin/cnitool
export RUNS POINTS
if [[ ! -x /usr/lib/cni/bridge || ! -x /usr/lib/cni/portmap ]]; then
    apt-get install -y -qq --no-install-recommends containernetworking-plugins >/dev/null
fi
command -v iptables-save >/dev/null || apt-get install -y -qq --no-install-recommends iptables >/dev/null

work=$(mktemp -d /tmp/bench-cni.XXXXXX)
# the sandboxes cover /var/lib/cni with a tmpfs: it must exist to be covered
made_varlibcni=false
[[ -d /var/lib/cni ]] || { mkdir -p /var/lib/cni && made_varlibcni=true; }
trap 'rm -rf "$work"; if $made_varlibcni; then rmdir /var/lib/cni 2>/dev/null; fi' EXIT

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
      "ipam": { "type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
                "routes": [{"dst": "0.0.0.0/0"}] } },
    { "type": "portmap", "capabilities": {"portMappings": true} } ] }
EOF
cat >"$work/cell-cni.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "bench",
  "plugins": [
    { "type": "cell-cni", "network": "bridge", "driver": "vnet",
      "interface": "cni-bench0", "subnet": "10.88.0.0/16", "nat": true,
      "capabilities": {"portMappings": true} } ] }
EOF

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
        echo "bench-cni: $chain, port mappings: $ports, N = $POINTS, $RUNS runs each..." >&2
        mkdir -p "$work/$chain-$ports"
        out=$(unshare --net --mount --pid --fork --mount-proc --propagation private -- \
            bash "$0" --inner "$chain" "$plugin_dir" "$work/$chain.conflist" "$ports" "$work/$chain-$ports") || {
            echo "bench-cni: the $chain run failed" >&2
            exit 1
        }
        while read -r line; do results+=("$line"); done < <(grep '^RESULT' <<<"$out")
    done
done

echo
echo "cnitool add and del of one pod with N-1 others attached, medians of $RUNS (ms) of the"
echo "wall time and of the CPU time (cnitool and its plugins); rules and set elements with N pods"
printf '%-10s %-12s %5s %9s %8s %9s %8s %10s %9s %9s\n' chain ports N "ADD wall" "ADD cpu" "DEL wall" "DEL cpu" \
    "nft rules" elements iptables
for line in "${results[@]}"; do
    read -r _ chain ports n add add_cpu del del_cpu rules elements ipt <<<"$line"
    printf '%-10s %-12s %5s %9s %8s %9s %8s %10s %9s %9s\n' "$chain" "$ports" "$n" "$add" "$add_cpu" "$del" "$del_cpu" \
        "$rules" "$elements" "$ipt"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"

# cell-cni's time as a fraction of the reference chain's: wall and CPU time
# as measured, and above the null chain's (what the plugins themselves take)
if [[ " $CHAINS " == *" reference "* && " $CHAINS " == *" cell-cni "* ]]; then
    echo
    printf '%-25s %-27s %s\n' "cell-cni / reference" "as measured" "above the null floor"
    printf '%-25s %5s %5s    %5s %5s      %5s %5s    %5s %5s\n' "" ADD "" DEL "" ADD "" DEL ""
    printf '%-25s %5s %5s    %5s %5s      %5s %5s    %5s %5s\n' "" wall cpu wall cpu wall cpu wall cpu
    printf '%s\n' "${results[@]}" | awk '
        { key = $3 " " $4; for (i = 5; i <= 8; i++) t[$2, key, i] = $i; if ($2 == "cell-cni") keys[++k] = key }
        END {
            for (j = 1; j <= k; j++) {
                key = keys[j]; split(key, kp, " ")
                line = sprintf("ports %-12s N=%-4s", kp[1], kp[2])
                for (i = 5; i <= 8; i++) line = line sprintf("%s %5.2f", i == 7 ? "   " : "", t["cell-cni", key, i] / t["reference", key, i])
                if (("null", key, 5) in t) {
                    line = line "      "
                    for (i = 5; i <= 8; i++)
                        line = line sprintf("%s %5.2f", i == 7 ? "   " : "",
                            (t["cell-cni", key, i] - t["null", key, i]) / (t["reference", key, i] - t["null", key, i]))
                }
                print line
            }
        }'
fi
