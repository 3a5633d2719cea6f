#!/usr/bin/env bash
# Benchmark: the median wall time of `cell run busybox true` and of
# `cell exec` into a running container, over RUNS runs (default 50), then
# the attach benchmark (scripts/bench-attach.sh: N_MAX containers, default
# 1000, connected one by one to a bridge network), with a release build, in
# sandbox namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh
start_celld
RUNS=${RUNS:-50}
cell() { "$CELL_BIN/cell" "$@"; }

# Prints the median, in milliseconds, of RUNS timings of the command.
median_ms() {
    local times=()
    for _ in $(seq "$RUNS"); do
        local start end
        start=${EPOCHREALTIME/./}
        "$@" >/dev/null 2>&1
        end=${EPOCHREALTIME/./}
        times+=($((end - start)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m / 1000}'
}

cell image create busybox >/dev/null 2>&1
cell run -d --name bench busybox sleep 100000 >/dev/null 2>&1
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs: $RUNS"
echo "cell run busybox true:     median $(median_ms cell run busybox true) ms"
echo "cell exec bench true:      median $(median_ms cell exec bench true) ms"

echo
# In a sandbox of its own, so that it starts from an empty ruleset and a
# fresh celld (sandbox.sh sees CELL_SANDBOXED and neither builds nor
# re-executes).
unshare --net --mount --pid --fork --mount-proc --propagation private -- bash scripts/bench-attach.sh
