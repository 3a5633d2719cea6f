#!/usr/bin/env bash
# cnitool-conflist.sh: one conflist through upstream cnitool (CNI 1.3.0's
# libcni) on a node made for it, to show that a documented conflist works.
#
#   cnitool-conflist.sh [--tmpfs DIR]... [--parallel N] PLUGIN_DIR CONFLIST
#
# In a fresh network, mount and pid namespace (the "node"; private tmpfs on
# /run, /var/lib/cni and each --tmpfs DIR): an uplink em0 (198.51.100.2,
# the default route) to an "upstream" namespace at 198.51.100.1; for a
# `"network": "custom"` conflist, its `interface` as a veth to a "lan"
# namespace. Then, on a fresh pod netns: ADD (the result is printed), the
# pod's addresses and routes, CHECK, STATUS, DEL, DEL again, GC, with the
# version the conflist asks for (CHECK from 0.4.0, STATUS and GC from 1.1.0),
# and no veth left on the node. With --parallel N, then N ADDs at once on N
# pods, which must all succeed with N distinct IPv4 addresses, and N DELs
# at once, which must leave no veth.
# Exit 0 when every step succeeded, 1 when one failed, 77 when cnitool could
# not be installed here (scripts/cni-tools/cni-real-client.sh --install-only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
log() { printf '[cnitool-conflist] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
TMPFS=() POS=() PARALLEL=0
while (($#)); do
    case $1 in
        --tmpfs) TMPFS+=("$2") && shift ;;
        --parallel) PARALLEL=$2 && shift ;;
        -*) die "unknown option $1" ;;
        *) POS+=("$1") ;;
    esac
    shift
done
((${#POS[@]} == 2)) || die "usage: $0 [--tmpfs DIR]... [--parallel N] PLUGIN_DIR CONFLIST"
[[ $PARALLEL =~ ^[0-9]+$ ]] || die "--parallel takes a number, not '$PARALLEL'"
PLUGIN_DIR=$(readlink -f "${POS[0]}") CONFLIST=$(readlink -f "${POS[1]}")
[[ -d $PLUGIN_DIR && -f $CONFLIST ]] || die "need a plugin directory and a conflist, not '${POS[0]}' '${POS[1]}'"
[[ $(id -u) == 0 ]] || die "must run as root"

installer=${CNI_REAL_CLIENT:-$repo/scripts/cni-tools/cni-real-client.sh}
if ! install_log=$(bash "$installer" --install-only 2>&1); then
    printf '%s\n' "$install_log" | tail -5 >&2
    log "SKIP: cnitool could not be installed here ($installer --install-only failed)"
    exit 77
fi
CNITOOL=${CNI_REAL_CLIENT_PREFIX:-/opt/cni-real-client}/bin/cnitool

# name, effective version, and the custom network's parent (if any)
read -r NETNAME VERSION PARENT < <(python3 - "$CONFLIST" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
known = ["0.4.0", "1.0.0", "1.1.0"]
key = lambda v: tuple(int(x) for x in v.split("."))
vs = [v for v in c.get("cniVersions", []) if v in known] or [c["cniVersion"]]
p = c["plugins"][0]
print(c["name"], max(vs, key=key), p.get("interface", "-") if p.get("network") == "custom" else "-")
EOF
) || die "cannot read $CONFLIST"

WORK=$(mktemp -d /tmp/cnitool-conflist.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/net.d"
cp "$CONFLIST" "$WORK/net.d/10-$NETNAME.conflist"

cat >"$WORK/inner.sh" <<'EOF'
set -u
mount -t tmpfs tmpfs /run
mkdir -p /var/lib/cni && mount -t tmpfs tmpfs /var/lib/cni
for d in $EXTRA_TMPFS; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
ip link set lo up
mkdir -p /run/netns
for ns in upstream lan pod; do touch /run/netns/$ns && unshare --net=/run/netns/$ns true; done
ip link add em0 type veth peer name up0
ip link set up0 netns upstream
ip -n upstream addr add 198.51.100.1/24 dev up0
ip -n upstream link set up0 up
ip addr add 198.51.100.2/24 dev em0
ip link set em0 up
ip route add default via 198.51.100.1
if [ "$PARENT" != - ]; then
    ip link add "$PARENT" type veth peer name lan0
    ip link set lan0 netns lan
    ip -n lan link set lan0 up
    ip link set "$PARENT" up
fi
export CNI_PATH=$PLUGIN_DIR NETCONFPATH=$WORK/net.d CNI_IFNAME=eth0
vge() { [ "$(printf '%s\n%s\n' "$VERSION" "$1" | sort -V | head -1)" = "$1" ]; }
step() {
    echo "=== cnitool $1"
    if ! out=$(timeout 60 "$CNITOOL" "$1" "$NETNAME" /run/netns/pod 2>&1); then
        echo "--- cnitool $1 FAILED: $out"
        exit 1
    fi
    [ -n "$out" ] && echo "$out"
    return 0
}
# the node's veths but the uplink and a custom network's parent (a custom
# network's pods have macvlans: no veth on the node)
pod_veths() { ip -o link show type veth | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -vx -e em0 -e "$PARENT" || true; }
veths_per_pod=1; [ "$PARENT" = - ] || veths_per_pod=0
step add
[ "$(pod_veths | grep -c .)" = $veths_per_pod ] || { echo "--- wanted $veths_per_pod veth on the node after ADD: $(pod_veths)"; exit 1; }
echo "--- the pod's addresses and routes:"
ip -n pod -br addr
ip -n pod route
ip -n pod -6 route
if vge 0.4.0; then step check; fi
if vge 1.1.0; then step status; fi
step del
step del
if vge 1.1.0; then step gc; fi
left=$(pod_veths)
[ -z "$left" ] || { echo "--- veths left after DEL: $left"; exit 1; }
echo "--- no veth left after DEL"
[ "$PARALLEL" -gt 0 ] || exit 0

echo "=== $PARALLEL cnitool add at once"
for i in $(seq "$PARALLEL"); do touch /run/netns/par$i && unshare --net=/run/netns/par$i true; done
all() { # VERB: runs cnitool VERB on every pod at once; fails if one did
    local pids=() i bad=0
    for i in $(seq "$PARALLEL"); do
        timeout 120 "$CNITOOL" "$1" "$NETNAME" /run/netns/par$i >"$WORK/par$i.$1" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || { bad=1; echo "--- $1 of pod par$((i + 1)) FAILED: $(cat "$WORK/par$((i + 1)).$1")"; }; done
    return $bad
}
all add || exit 1
addrs=$(for i in $(seq "$PARALLEL"); do ip -4 -o -n par$i addr show dev eth0 | awk '{print $4}'; done)
distinct=$(printf '%s\n' "$addrs" | sort -u | grep -c . || true)
echo "--- $PARALLEL pods hold $distinct distinct IPv4 addresses: $(echo $addrs)"
[ "$distinct" = "$PARALLEL" ] || exit 1
[ "$(pod_veths | grep -c .)" = $((PARALLEL * veths_per_pod)) ] || { echo "--- wanted $((PARALLEL * veths_per_pod)) veths: $(pod_veths)"; exit 1; }
echo "=== $PARALLEL cnitool del at once"
all del || exit 1
left=$(pod_veths)
[ -z "$left" ] || { echo "--- veths left after the DELs: $left"; exit 1; }
echo "--- no veth left after the DELs"
exit 0
EOF

# A tmpfs needs a directory to cover; those made here (outside /run, which
# is a tmpfs of the sandbox's own) are removed after the run.
MADE_DIRS=()
for d in /var/lib/cni "${TMPFS[@]}"; do
    [[ $d == /run/* || -d $d ]] || { mkdir -p "$d" && MADE_DIRS+=("$d"); }
done
log "cnitool: $CNITOOL  plugins: $PLUGIN_DIR  conflist: $CONFLIST (cniVersion $VERSION)"
set +e
env WORK="$WORK" CNITOOL="$CNITOOL" PLUGIN_DIR="$PLUGIN_DIR" NETNAME="$NETNAME" VERSION="$VERSION" \
    PARENT="$PARENT" PARALLEL="$PARALLEL" EXTRA_TMPFS="${TMPFS[*]:-}" \
    unshare --net --mount --pid --fork --mount-proc --propagation private bash "$WORK/inner.sh"
rc=$?
set -e
for d in "${MADE_DIRS[@]}"; do rmdir "$d" 2>/dev/null || true; done
if ((rc == 0)); then log "PASS"; else log "FAIL (rc=$rc)"; fi
exit $rc
