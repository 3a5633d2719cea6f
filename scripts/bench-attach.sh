#!/usr/bin/env bash
# Benchmark: the cost of attaching a container to a network as the network
# fills up. One bridge network (10.64.0.0/16); N_MAX containers (default
# 1000) started detached with the vnet driver and no network, then
# connected one by one with `cell network connect`, each timed (wall time
# of the command). Printed at N = 1, 10, 100, 1000 (those up to N_MAX, and
# N_MAX): the median time of one connect over the ten connects around N
# (1-10, 96-105, 991-1000, ...), and the number of nftables rules and set
# elements once N containers are attached. Beside each connect, the median
# of RUNS (default 10) `cell network ls` round trips at the same N: the
# client's start-up and an HTTP round trip with a store read, so that the
# connect's own engine and kernel cost shows apart; `cell --version` and
# `/bin/true` once, for reference. Last, the connect time of other
# containers while a `stop -t 30` of a container whose init ignores SIGTERM
# is pending (alone, and with a connect of that same container queued
# behind it), against the same connects without. Release build, in a
# sandbox namespace (scripts/sandbox.sh). A Linux bridge takes at most 1024
# ports, so N_MAX is at most 1000.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh
N_MAX=${N_MAX:-1000}
if ! [[ $N_MAX =~ ^[0-9]+$ ]] || ((N_MAX < 10 || N_MAX > 1000)); then
    echo "N_MAX must be a number from 10 to 1000 (a bridge has at most 1024 ports), not '$N_MAX'" >&2
    exit 1
fi
RUNS=${RUNS:-10}
if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 1)); then
    echo "RUNS must be a number of at least 1, not '$RUNS'" >&2
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

# The median (ms) of RUNS timings of the command given.
median_cmd_ms() {
    local times=() t0 t1
    for _ in $(seq "$RUNS"); do
        t0=${EPOCHREALTIME/./}
        "$@" >/dev/null 2>&1
        t1=${EPOCHREALTIME/./}
        times+=($((t1 - t0)))
    done
    median_ms "${times[@]}"
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
declare -A rules_at elements_at ls_at

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
        ls_at[$i]=$(median_cmd_ms cell network ls)
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
echo "HTTP, store, kernel), the four steps are celld's kernel work within it (ms); 'net ls' is"
echo "the median of $RUNS 'cell network ls' at N (client, HTTP, store), 'above ls' the connect minus it:"
echo "reference, median of $RUNS: 'cell --version' $(median_cmd_ms cell --version) ms, '/bin/true' $(median_cmd_ms /bin/true) ms"
printf '%-6s %-10s %8s %7s %9s %9s %7s %6s %7s %6s %9s\n' "N" "connects" "connect" "net ls" "above ls" \
    "firewall" "create" "host" "inside" "rules" "elements"
for c in "${checkpoints[@]}"; do
    lo=$((c - 4))
    ((lo > N_MAX - 9)) && lo=$((N_MAX - 9))
    ((lo < 1)) && lo=1
    hi=$((lo + 9))
    connect_ms=$(median_ms "${times[@]:lo-1:10}")
    printf '%-6s %-10s %8s %7s %9s %9s %7s %6s %7s %6s %9s\n' "$c" "$lo-$hi" "$connect_ms" "${ls_at[$c]}" \
        "$(awk -v a="$connect_ms" -v b="${ls_at[$c]}" 'BEGIN {printf "%.2f", a - b}')" \
        "$(step_ms firewall "$lo" "$hi")" "$(step_ms create "$lo" "$hi")" "$(step_ms host "$lo" "$hi")" \
        "$(step_ms inside "$lo" "$hi")" "${rules_at[$c]}" "${elements_at[$c]}"
done
printf 'all %d connects: median %s ms, slowest %s ms\n' "$N_MAX" "$(median_ms "${times[@]}")" \
    "$(printf '%s\n' "${times[@]}" | sort -n | tail -1 | awk '{printf "%.2f", $1 / 1000}')"

# Connects of other containers while a stop is pending. A container whose
# init ignores SIGTERM (and leaves a mark when it comes) makes `stop -t 30`
# wait its whole timeout; the connects go to a bridge network of their
# own, so the first part's bridge and its N_MAX ports play no part.
STOP_CONNECTS=5
cell network create -t bridge --subnet 10.65.0.0/16 stopnet >/dev/null
for i in $(seq $((3 * STOP_CONNECTS))); do
    cell run -d --name "q$i" -l vnet busybox sleep 1000000 >/dev/null 2>&1
done
next_q=1

# Connects the next STOP_CONNECTS q containers to stopnet, each timed;
# sets connect_times (us) and connects_while_pending: those of them that
# started while process $1 still ran (all of them without $1). A connect
# that waits for the stop counts, with the whole of its wait.
time_connects() {
    local pending_pid=${1:-} t0 t1 was_pending
    connect_times=()
    connects_while_pending=0
    for _ in $(seq "$STOP_CONNECTS"); do
        was_pending=1
        [[ -z $pending_pid ]] || kill -0 "$pending_pid" 2>/dev/null || was_pending=0
        t0=${EPOCHREALTIME/./}
        cell network connect stopnet "q$next_q" >/dev/null
        t1=${EPOCHREALTIME/./}
        next_q=$((next_q + 1))
        if ((was_pending)); then
            connect_times+=($((t1 - t0)))
            connects_while_pending=$((connects_while_pending + 1))
        fi
    done
}

# Whether process $1 holds a connected unix socket (a cell client whose
# connection to celld went through).
holds_connected_socket() {
    local fd link
    for fd in /proc/"$1"/fd/*; do
        link=$(readlink "$fd" 2>/dev/null) || continue
        [[ $link == socket:* ]] || continue
        link=${link#socket:[}
        awk -v inode="${link%]}" '$6 == "03" && $7 == inode {found = 1} END {exit !found}' \
            /proc/"$1"/net/unix && return 0
    done
    return 1
}

# Starts `cell stop -t 30 NAME` of a new TERM-ignoring container NAME and
# returns once celld has sent the SIGTERM; sets stop_pid.
start_pending_stop() {
    local name=$1 init
    cell run -d --name "$name" -l vnet busybox sh -c \
        'trap "touch /tmp/got-term" TERM; while :; do sleep 1; done' >/dev/null 2>&1
    init=$(cell inspect "$name" | sed -n 's/^ *"pid": \([0-9]*\).*/\1/p' | head -1)
    # The binary itself, not the function: $! must be the client.
    "$CELL_BIN/cell" stop -t 30 "$name" >/dev/null &
    stop_pid=$!
    for _ in $(seq 400); do [[ -e /proc/$init/root/tmp/got-term ]] && return 0; sleep 0.05; done
    echo "warning: $name's init never got its SIGTERM" >&2
}

# Prints one line: the median of connect_times, and how many of the
# connects started while the stop was pending.
print_connects() {
    local what=$1
    if ((connects_while_pending > 0)); then
        printf '  %-58s %8s ms (%d of %d connects)\n' "$what" "$(median_ms "${connect_times[@]}")" \
            "$connects_while_pending" "$STOP_CONNECTS"
    else
        printf '  %-58s %8s (none started while it was pending)\n' "$what" "-"
    fi
}

echo
echo "connect of another container to a bridge network (median of $STOP_CONNECTS, ms), with:"
time_connects
print_connects "no stop pending"
start_pending_stop stubborn1
time_connects "$stop_pid"
print_connects "a stop -t 30 of one container pending"
wait "$stop_pid" || true
start_pending_stop stubborn2
"$CELL_BIN/cell" network connect stopnet stubborn2 >/dev/null &
queued_pid=$!
for _ in $(seq 400); do
    holds_connected_socket "$queued_pid" && break
    # Done already: a connect of a stopping container does not wait for
    # the stop (celld holds no lock while it waits for the process).
    kill -0 "$queued_pid" 2>/dev/null || break
    sleep 0.01
done
if kill -0 "$queued_pid" 2>/dev/null; then
    what="that stop and a connect of its container waiting behind it"
else
    what="that stop, and a connect of its container (done at once)"
fi
time_connects "$stop_pid"
print_connects "$what"
wait "$stop_pid" "$queued_pid" || true

# CELL_LOG=debug CELL_BENCH_LOG=FILE keeps celld's log, with the time of
# each step of every attach.
if [[ -n ${CELL_BENCH_LOG:-} ]]; then cp "$CELL_TMP/celld.log" "$CELL_BENCH_LOG"; fi
