#!/usr/bin/env bash
# Benchmark: the cost of attaching a container to a network as the network
# fills up. One bridge network (10.64.0.0/16); N_MAX containers (default
# 1000) started detached with the vnet driver and no network, then
# connected one by one with `cell network connect`, each timed (wall time
# of the command). Printed at N = 1, 10, 100, 1000 (those up to N_MAX, and
# N_MAX): the median time of one connect over the ten connects around N
# (1-10, 96-105, 991-1000, ...), and the number of nftables rules and set
# elements once N containers are attached. Release build, in a sandbox
# namespace (scripts/sandbox.sh). A Linux bridge takes at most 1024 ports,
# so N_MAX is at most 1000.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh
N_MAX=${N_MAX:-1000}
if ! [[ $N_MAX =~ ^[0-9]+$ ]] || ((N_MAX < 10 || N_MAX > 1000)); then
    echo "N_MAX must be a number from 10 to 1000 (a bridge has at most 1024 ports), not '$N_MAX'" >&2
    exit 1
fi
# celld logs the time of each step of every attach at debug level; the
# table below splits the connect time with it.
export CELL_LOG=${CELL_LOG:-info,cell_net=debug}
start_celld
cell() { "$CELL_BIN/cell" "$@"; }

# Microseconds, without a fork (bash 5's EPOCHREALTIME is seconds.micros).
now_us() { echo "${EPOCHREALTIME/./}"; }

# The median of the numbers (microseconds) given, in milliseconds.
median_ms() {
    printf '%s\n' "$@" | sort -n |
        awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m / 1000}'
}

# The number of rules in the ruleset (all of it is cell's: the sandbox has
# a network namespace of its own).
count_rules() { nft -j list ruleset | grep -o '{"rule": *{' | wc -l; }

# The number of elements in all sets: the items of every
# `elements = { a, b, ... }` block of the listing.
count_elements() {
    nft list ruleset | awk '
        /elements = \{/ { inside = 1; body = "" }
        inside { body = body " " $0 }
        inside && /\}/ {
            sub(/.*elements = \{/, "", body); sub(/\}.*/, "", body)
            total += gsub(/,/, ",", body) + 1
            inside = 0
        }
        END { print total + 0 }'
}

echo "attach benchmark: $N_MAX containers on one bridge network, attached one by one"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cell image create busybox >/dev/null 2>&1
cell network create -t bridge --subnet 10.64.0.0/16 benchnet >/dev/null
echo "empty network: $(count_rules) nftables rules, $(count_elements) set elements"

start=$(now_us)
for i in $(seq "$N_MAX"); do
    cell run -d --name "c$i" -l vnet busybox sleep 1000000 >/dev/null 2>&1
    if ((i % 100 == 0 || i == N_MAX)); then
        printf 'started %d/%d containers (%d s)\n' "$i" "$N_MAX" $((($(now_us) - start) / 1000000))
    fi
done

# Checkpoints: 1, 10, 100, 1000 up to N_MAX, and N_MAX.
checkpoints=()
for c in 1 10 100 1000; do ((c <= N_MAX)) && checkpoints+=("$c"); done
[[ " ${checkpoints[*]} " == *" $N_MAX "* ]] || checkpoints+=("$N_MAX")
declare -A rules_at elements_at

times=()
start=$(now_us)
for i in $(seq "$N_MAX"); do
    t0=${EPOCHREALTIME/./}
    cell network connect benchnet "c$i" >/dev/null
    t1=${EPOCHREALTIME/./}
    times+=($((t1 - t0)))
    if [[ " ${checkpoints[*]} " == *" $i "* ]]; then
        rules_at[$i]=$(count_rules)
        elements_at[$i]=$(count_elements)
    fi
    if ((i % 100 == 0 || i == N_MAX)); then
        printf 'connected %d/%d containers (%d s)\n' "$i" "$N_MAX" $((($(now_us) - start) / 1000000))
    fi
done

# A spot check that the last container is really on the network.
if ! cell exec "c$N_MAX" ip -o -4 addr 2>/dev/null | grep -q 'inet 10\.64\.'; then
    echo "warning: the last container has no 10.64.x.x address" >&2
fi

# The steps of each attach, in connect order: "firewall=12us create=..."
# (the nftables transaction, the veth pair, the host side, the inside).
mapfile -t steps < <(sed -n 's/.* attach .*steps=//p' "$CELL_TMP/celld.log")
# The median over connects lo..hi of one step (in ms), or "-" without logs.
step_ms() {
    local step=$1 lo=$2 hi=$3 values=()
    ((${#steps[@]} >= hi)) || { echo "-"; return; }
    for ((j = lo - 1; j < hi; j++)); do
        values+=("$(grep -o "$step=[0-9]*" <<<"${steps[j]}" | cut -d= -f2)")
    done
    median_ms "${values[@]}"
}

echo
echo "median of 10 connects around N; 'cell network connect' is the whole command (client,"
echo "HTTP, store, kernel), the four steps are celld's kernel work within it (ms):"
printf '%-6s %-10s %8s %9s %7s %6s %7s %6s %9s\n' "N" "connects" "connect" "firewall" "create" "host" "inside" "rules" "elements"
for c in "${checkpoints[@]}"; do
    lo=$((c - 4))
    ((lo > N_MAX - 9)) && lo=$((N_MAX - 9))
    ((lo < 1)) && lo=1
    hi=$((lo + 9))
    printf '%-6s %-10s %8s %9s %7s %6s %7s %6s %9s\n' "$c" "$lo-$hi" "$(median_ms "${times[@]:lo-1:10}")" \
        "$(step_ms firewall "$lo" "$hi")" "$(step_ms create "$lo" "$hi")" "$(step_ms host "$lo" "$hi")" \
        "$(step_ms inside "$lo" "$hi")" "${rules_at[$c]}" "${elements_at[$c]}"
done
printf 'all %d connects: median %s ms, slowest %s ms\n' "$N_MAX" "$(median_ms "${times[@]}")" \
    "$(printf '%s\n' "${times[@]}" | sort -n | tail -1 | awk '{printf "%.2f", $1 / 1000}')"

# CELL_LOG=debug CELL_BENCH_LOG=FILE keeps celld's log, with the time of
# each step of every attach.
if [[ -n ${CELL_BENCH_LOG:-} ]]; then cp "$CELL_TMP/celld.log" "$CELL_BENCH_LOG"; fi
