# Sourced by the demo and the benchmark, from the repository's top: installs
# what is needed and builds the release binaries, then re-runs the calling
# script inside a fresh network, mount and pid namespace, so that everything
# it creates (links, tables, mounts, processes) dies with it and the
# machine's own network is never touched.
export CELL_BIN=$PWD/target/release
if [ -z "${CELL_SANDBOXED:-}" ]; then
    bash scripts/install-deps.sh
    cargo build --release --quiet
    export CELL_SANDBOXED=1
    exec unshare --net --mount --pid --fork --mount-proc --propagation private -- bash "$0" "$@"
fi
ip link set lo up
# `ip netns` keeps its names in /run/netns, which is shared with the
# machine: give the sandbox a private one.
mkdir -p /run/netns && mount -t tmpfs cell-sandbox-netns /run/netns

# Commands run at exit, in order (scripts add theirs with on_exit).
CELL_ON_EXIT=()
on_exit() { CELL_ON_EXIT+=("$1"); }
run_exit_handlers() { for h in "${CELL_ON_EXIT[@]}"; do eval "$h" || true; done; }
trap run_exit_handlers EXIT

# Stops celld, then removes its root. The network namespaces of containers
# still running are bind mounts under the root; they die with the sandbox's
# mount namespace, but until then they make `rm` fail, which would leave the
# directory behind on the machine's /tmp: unmount them first.
stop_celld_and_clean() {
    kill "$CELLD_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$CELLD_PID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$CELLD_PID" 2>/dev/null
    wait "$CELLD_PID" 2>/dev/null
    awk -v dir="$CELL_TMP/" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m"; done
    rm -rf "$CELL_TMP"
}

# Starts celld on a temporary root; sets CELL_HOST and CELLD_PID.
start_celld() {
    CELL_TMP=$(mktemp -d /tmp/cell-XXXXXX)
    on_exit 'stop_celld_and_clean'
    "$CELL_BIN/celld" --root "$CELL_TMP/root" --socket "$CELL_TMP/celld.sock" 2>"$CELL_TMP/celld.log" &
    CELLD_PID=$!
    export CELL_HOST="unix://$CELL_TMP/celld.sock"
    for _ in $(seq 200); do [ -S "$CELL_TMP/celld.sock" ] && return 0; sleep 0.05; done
    echo "celld did not start:" >&2; cat "$CELL_TMP/celld.log" >&2; exit 1
}
