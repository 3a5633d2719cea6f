#!/usr/bin/env bash
# Benchmark: what a network stack (-S) and a DNS mode (--dns) cost a start.
# The median wall time of RUNS (default 20) `cell run ... busybox true`:
# on the host's stack, dual (no filter) against ipv4 and ipv6 (a seccomp
# filter installed by the init); on a bridge network with vnet, dual
# against ipv4 (IPv6 switched off in the namespace, no IPv6 address) and
# ipv6; and on that network each DNS mode (the resolv.conf written at the
# start; container: looks the DNS container's address up, that container
# already running). Release build, in a sandbox namespace
# (scripts/sandbox.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh
start_celld
RUNS=${RUNS:-20}
if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 1)); then
    echo "RUNS must be a number of at least 1, not '$RUNS'" >&2
    exit 1
fi
cell() { "$CELL_BIN/cell" "$@"; }

# The cases, each a label and a command line; they are timed round-robin
# (one run of each in turn, RUNS rounds), so a change of the machine's load
# during the benchmark weighs on every case alike.
LABELS=()
COMMANDS=()
case_() { LABELS+=("$1"); shift; COMMANDS+=("$*"); }

cell image create busybox >/dev/null
cell network create -t bridge --subnet 10.66.0.0/16 --subnet6 fd66::/64 net >/dev/null
cell run -d --name ns -l vnet -n net busybox sleep 100000 >/dev/null 2>&1
echo 'nameserver 192.0.2.53' >"$CELL_TMP/resolv.conf"
for stack in dual ipv4 ipv6; do
    case_ "host, -S $stack" cell run -S "$stack" busybox true
done
for stack in dual ipv4 ipv6; do
    case_ "vnet on a bridge, -S $stack" cell run -l vnet -n net -S "$stack" busybox true
done
for dns in cell inherit off "custom:$CELL_TMP/resolv.conf" container:ns; do
    case_ "vnet on a bridge, --dns ${dns%%:*}" cell run -l vnet -n net --dns "$dns" busybox true
done

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs: $RUNS of each, round-robin (median)"
TIMES_DIR=$CELL_TMP/times
mkdir -p "$TIMES_DIR"
for _ in $(seq "$RUNS"); do
    for i in "${!COMMANDS[@]}"; do
        start=${EPOCHREALTIME/./}
        ${COMMANDS[$i]} >/dev/null 2>&1 || { echo "failed: ${COMMANDS[$i]}" >&2; exit 1; }
        end=${EPOCHREALTIME/./}
        echo $((end - start)) >>"$TIMES_DIR/$i"
    done
done
for i in "${!COMMANDS[@]}"; do
    printf '%-36s %s ms\n' "${LABELS[$i]}" "$(sort -n "$TIMES_DIR/$i" | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m / 1000}')"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
