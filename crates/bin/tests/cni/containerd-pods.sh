#!/usr/bin/env bash
# containerd-pods.sh: two pods through a real containerd (2.1, CRI plugin,
# libcni 1.3) on a CNI conflist, checked by containerd_pods.py beside it.
#
#   containerd-pods.sh [--tables 'inet cell_cni,bridge cell_cni'] [--lease-cmd CMD]
#                      [--ports] [--tmpfs DIR]... [--trace]
#                      [--refused TEXT --then GOOD_CONFLIST] PLUGIN_DIR CONFLIST
#
# With --refused, CONFLIST is a bad one: containerd must report TEXT (in its
# status and when a pod is run) and nothing may be made; then GOOD_CONFLIST
# replaces it and a pod must start (the positive control).
#
# Exit 0: every check passed; 1: a check or a step failed; 77: containerd
# and its CRI client could not be installed here (the caller reports a skip,
# with the reason printed on stderr).
#
# containerd, runc and the Python CRI client come
# from scripts/cni-tools/cni-containerd-cri.sh --install-only (Debian's mirror
# and PyPI only; about 30 s the first time). Everything then runs inside
# `unshare --net --mount --pid`: private tmpfs on /run and /var/lib/cni (and
# each --tmpfs DIR, where a plugin keeps its state), containerd's root, state
# and socket in a temp dir, an "upstream" namespace at 198.51.100.1 behind
# the sandbox host's em0 (198.51.100.2, the default route), so that NAT has
# a way out that leads nowhere real. The one trace outside is the empty
# cgroup `k8s.io` runc makes; it is removed after the run if it was not
# there before. --trace prints what containerd sent each plugin and got back.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
PREFIX=${CNI_REAL_CLIENT_PREFIX:-/opt/cni-real-client}/cri
log() { printf '[containerd-pods] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

TABLES="" LEASE_CMD="" PORTS="" TRACE=0 TMPFS=() POS=() REFUSED="" THEN=""
while (($#)); do
    case $1 in
        --tables) TABLES=$2 && shift ;;
        --lease-cmd) LEASE_CMD=$2 && shift ;;
        --ports) PORTS=--ports ;;
        --tmpfs) TMPFS+=("$2") && shift ;;
        --trace) TRACE=1 ;;
        --refused) REFUSED=$2 && shift ;;
        --then) THEN=$(readlink -f "$2") && shift ;;
        -*) die "unknown option $1" ;;
        *) POS+=("$1") ;;
    esac
    shift
done
((${#POS[@]} == 2)) || die "usage: $0 [options] PLUGIN_DIR CONFLIST"
PLUGIN_DIR=$(readlink -f "${POS[0]}") CONFLIST=$(readlink -f "${POS[1]}")
[[ -d $PLUGIN_DIR && -f $CONFLIST ]] || die "need a plugin directory and a conflist, not '${POS[0]}' '${POS[1]}'"
[[ $(id -u) == 0 ]] || die "must run as root"
[[ -z $REFUSED || -f $THEN ]] || die "--refused needs --then GOOD_CONFLIST"

installer=${CNI_CONTAINERD_CRI:-$repo/scripts/cni-tools/cni-containerd-cri.sh}
if ! install_log=$(bash "$installer" --install-only 2>&1); then
    printf '%s\n' "$install_log" | tail -5 >&2
    log "SKIP: containerd and its CRI client could not be installed here ($installer --install-only failed)"
    exit 77
fi
CBIN=$PREFIX/containerd-sid/usr/bin
[[ -x $CBIN/containerd && -f $PREFIX/cri/api_pb2_grpc.py ]] ||
    die "the install under $PREFIX is incomplete"

WORK=$(mktemp -d /tmp/containerd-pods.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin" "$WORK/net.d" "$WORK/logs"
for p in "$PLUGIN_DIR"/*; do
    [[ -f $p && -x $p ]] || continue
    n=$(basename "$p")
    [[ -e $WORK/bin/$n ]] && continue
    if ((TRACE)); then
        cat >"$WORK/bin/$n" <<EOF
#!/bin/bash
in=\$(cat)
{ echo ">>> \$CNI_COMMAND $n  CNI_CONTAINERID=\${CNI_CONTAINERID-} CNI_NETNS=\${CNI_NETNS-} CNI_IFNAME=\${CNI_IFNAME-}"
  printf '%s\n' "\$in"; } >>"$WORK/trace.log"
out=\$(printf '%s' "\$in" | "$p" "\$@"); rc=\$?
printf '<<< %s rc=%s %s\n' "$n" "\$rc" "\$out" >>"$WORK/trace.log"
printf '%s' "\$out"; exit \$rc
EOF
        chmod +x "$WORK/bin/$n"
    else
        ln -s "$p" "$WORK/bin/$n"
    fi
done
cp "$CONFLIST" "$WORK/net.d/10-net.conflist"

# The sandbox image: Debian's static busybox sleeping, as a docker archive
# (no registry is contacted).
python3 - "$WORK/pause.tar" <<'EOF'
import hashlib, io, json, tarfile, sys
lb = io.BytesIO()
with tarfile.open(fileobj=lb, mode="w", format=tarfile.PAX_FORMAT) as t:
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
    t.add("/bin/busybox", arcname="bin/busybox")
layer = lb.getvalue(); lsha = hashlib.sha256(layer).hexdigest()
cfg = json.dumps({"architecture": "amd64", "os": "linux",
                  "config": {"Entrypoint": ["/bin/busybox", "sleep", "2147483647"]},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + lsha]}}).encode()
csha = hashlib.sha256(cfg).hexdigest()
man = json.dumps([{"Config": csha + ".json", "RepoTags": ["localhost/pause:cni"], "Layers": [lsha + "/layer.tar"]}]).encode()
with tarfile.open(sys.argv[1], "w") as t:
    for name, data in ((lsha + "/layer.tar", layer), (csha + ".json", cfg), ("manifest.json", man)):
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
EOF

cat >"$WORK/config.toml" <<EOF
version = 3
root = "$WORK/root"
state = "$WORK/state"
[grpc]
  address = "$WORK/containerd.sock"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "localhost/pause:cni"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$WORK/bin"]
    conf_dir = "$WORK/net.d"
    # containerd brings the pod's lo up itself: the conflist's plugins are
    # the only ones it runs
    use_internal_loopback = true
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/opt"
EOF

cat >"$WORK/inner.sh" <<'EOF'
set -u
mount -t tmpfs tmpfs /run
mkdir -p /var/lib/cni && mount -t tmpfs tmpfs /var/lib/cni
for d in $EXTRA_TMPFS; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
ip link set lo up
mkdir -p /run/netns && touch /run/netns/upstream && unshare --net=/run/netns/upstream true
ip link add em0 type veth peer name up0
ip link set up0 netns upstream
ip -n upstream addr add 198.51.100.1/24 dev up0
ip -n upstream link set up0 up
ip -n upstream link set lo up
ip addr add 198.51.100.2/24 dev em0
ip link set em0 up
ip route add default via 198.51.100.1
PATH=$CBIN:$PATH "$CBIN/containerd" --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1 &
CPID=$!
for _ in $(seq 300); do [ -S "$WORK/containerd.sock" ] && break; sleep 0.1; done
[ -S "$WORK/containerd.sock" ] || { echo "containerd did not start"; tail "$WORK/containerd.log"; exit 1; }
"$CBIN/ctr" --address "$WORK/containerd.sock" -n k8s.io images import "$WORK/pause.tar" >/dev/null || exit 1
timeout 300 "$VENV/bin/python" "$HERE/containerd_pods.py" --socket "$WORK/containerd.sock" \
    --stubs "$STUBS" --logdir "$WORK/logs" --conflist "$WORK/net.d/10-net.conflist" \
    --upstream-netns /run/netns/upstream --tables "$TABLES" --lease-cmd "$LEASE_CMD" $PORTS \
    --refused "$REFUSED" --then-conflist "$THEN"
rc=$?
kill $CPID; wait $CPID 2>/dev/null
[ $rc = 0 ] || { echo "--- containerd log (errors):"; grep -E 'level=(error|warning)' "$WORK/containerd.log" | tail -8; }
exit $rc
EOF

CG_BEFORE=$(ls -d /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io 2>/dev/null || true)
# A tmpfs needs a directory to cover; those made here (outside /run, which
# is a tmpfs of the sandbox's own) are removed after the run.
MADE_DIRS=()
for d in /var/lib/cni "${TMPFS[@]}"; do
    [[ $d == /run/* || -d $d ]] || { mkdir -p "$d" && MADE_DIRS+=("$d"); }
done
log "containerd: $(head -1 "$PREFIX/INSTALLED-sid")  plugins: $PLUGIN_DIR  conflist: $CONFLIST"
set +e
# --pid --fork: containerd, its shims and the pods' processes die with the
# sandbox's pid 1 even when this script is killed.
env WORK="$WORK" CBIN="$CBIN" VENV="$PREFIX/venv" STUBS="$PREFIX/cri" HERE="$here" TABLES="$TABLES" \
    LEASE_CMD="$LEASE_CMD" PORTS="$PORTS" REFUSED="$REFUSED" THEN="$THEN" EXTRA_TMPFS="${TMPFS[*]:-}" \
    unshare --net --mount --pid --fork --mount-proc --propagation private bash "$WORK/inner.sh"
rc=$?
set -e
for d in "${MADE_DIRS[@]}"; do rmdir "$d" 2>/dev/null || true; done
if [[ -z $CG_BEFORE ]]; then
    for d in /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io; do
        # deepest first: pods' cgroups that a failed run left, then k8s.io
        [[ -d $d ]] && { find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || log "note: could not remove cgroup $d"; }
    done
fi
if ((TRACE)) && [[ -f $WORK/trace.log ]]; then
    echo "=== TRACE (what containerd sent to each plugin, and what came back)"
    cat "$WORK/trace.log"
fi
if ((rc == 0)); then log "PASS"; else log "FAIL (rc=$rc)"; fi
exit $rc
