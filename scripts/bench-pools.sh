#!/usr/bin/env bash
# Benchmark: the cost of carving networks from the pool as networks pile
# up. N_MAX (default 1000) loopback networks are created one by one, each
# without --subnet (a /24 carved from the pool, under celld's create lock,
# against every network and the host's addresses and routes); at N = 1, 10,
# 100, 1000 (those up to N_MAX) it prints the median wall time of the ten
# creations around N, the same for ten creations with an explicit --subnet
# beside the pool at that N (so the carving's own cost is the difference),
# and the median of RUNS (default 10) `cell network show --format json`
# round trips (the whole topology: every network's address map). Release
# build, in a sandbox namespace (scripts/sandbox.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh
N_MAX=${N_MAX:-1000}
if ! [[ $N_MAX =~ ^[0-9]+$ ]] || ((N_MAX < 10 || N_MAX > 4000)); then
    echo "N_MAX must be a number from 10 to 4000, not '$N_MAX'" >&2
    exit 1
fi
RUNS=${RUNS:-10}
if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 1)); then
    echo "RUNS must be a number of at least 1, not '$RUNS'" >&2
    exit 1
fi
start_celld
cell() { "$CELL_BIN/cell" "$@"; }

# The median of the numbers (microseconds) given, in milliseconds.
median_ms() {
    printf '%s\n' "$@" | sort -n |
        awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m / 1000}'
}

# The wall time (microseconds) of the command given.
time_us() {
    local t0 t1
    t0=${EPOCHREALTIME/./}
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    t1=${EPOCHREALTIME/./}
    echo $((t1 - t0))
}

checkpoints=()
for n in 1 10 100 1000 "$N_MAX"; do
    ((n <= N_MAX)) && [[ " ${checkpoints[*]} " != *" $n "* ]] && checkpoints+=("$n")
done

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pool networks: N_MAX=$N_MAX, network show runs: $RUNS"
printf '%-8s %-22s %-22s %-18s\n' "N" "create (carved /24)" "create (--subnet)" "network show"
carved=()
explicit=0
for i in $(seq 1 "$N_MAX"); do
    carved+=("$(time_us cell network create "p$i")")
    for c in "${checkpoints[@]}"; do
        if ((i == c)); then
            # The ten creations around N (fewer at N = 1).
            from=$((i > 10 ? i - 10 : 0))
            window=("${carved[@]:$from:10}")
            given=()
            for _ in $(seq 10); do
                # Beside the pool (10.192.0.0/10): 10.0.0.0/24, 10.0.1.0/24...
                x=$explicit
                explicit=$((explicit + 1))
                given+=("$(time_us cell network create --subnet "10.$((x / 256)).$((x % 256)).0/24" "s$x")")
            done
            shows=()
            for _ in $(seq "$RUNS"); do shows+=("$(time_us cell network show --format json)"); done
            printf '%-8s %-22s %-22s %-18s\n' "$i" "$(median_ms "${window[@]}") ms" \
                "$(median_ms "${given[@]}") ms" "$(median_ms "${shows[@]}") ms"
        fi
    done
done
