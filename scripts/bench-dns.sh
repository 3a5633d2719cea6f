#!/usr/bin/env bash
# Benchmark: celld's resolver of container names against Debian's
# aardvark-dns (podman's resolver), on the same machine, in one sandbox
# namespace (scripts/sandbox.sh). For each: queries per second (dnsperf,
# DURATION seconds, its default of 100 queries in flight) and the median
# latency of queries sent one at a time (dnsperf -q 1), for a container's
# name and for a name forwarded to the host's resolver: dnsmasq in an
# "upstream" namespace at 198.51.100.1 that answers *.upstream.test
# itself, named in the sandbox's resolv.conf (bind-mounted). Queries come
# from inside a container's namespace: to 127.0.0.11 for celld, to the
# bridge's gateway for aardvark-dns, which runs with a configuration
# directory written as netavark writes it (one file per network: the
# gateway, then "ID IPv4 IPv6 NAMES" lines). Last, celld's resident memory
# with 2, 10, 100 and N_MAX (default 1000) containers named (each a
# running container on the network), the median latency for a container's
# name at each, and aardvark-dns's memory with as many names.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh
N_MAX=${N_MAX:-1000}
if ! [[ $N_MAX =~ ^[0-9]+$ ]] || ((N_MAX < 10 || N_MAX > 1000)); then
    echo "N_MAX must be a number from 10 to 1000 (a bridge has at most 1024 ports), not '$N_MAX'" >&2
    exit 1
fi
DURATION=${DURATION:-5}
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 1)); then
    echo "DURATION must be a number of seconds, at least 1, not '$DURATION'" >&2
    exit 1
fi
AARDVARK=${AARDVARK:-/usr/lib/podman/aardvark-dns}
UPSTREAM=198.51.100.1
WORK=$(mktemp -d /tmp/cell-bench-dns-XXXXXX)
on_exit "rm -rf $WORK"

# The upstream namespace and its dnsmasq, and a resolv.conf naming it.
ip netns add upstream
ip -n upstream link set lo up
ip link add em0 type veth peer name uplink netns upstream
ip addr add 198.51.100.2/24 dev em0 && ip link set em0 up
ip -n upstream addr add $UPSTREAM/24 dev uplink && ip -n upstream link set uplink up
ip route add default via $UPSTREAM
ip netns exec upstream dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root \
    --listen-address=$UPSTREAM --bind-interfaces --address=/upstream.test/192.0.2.1 \
    --address=/upstream.test/2001:db8::1 --pid-file="$WORK/dnsmasq.pid" 2>"$WORK/dnsmasq.log" &
DNSMASQ_PID=$!
on_exit "kill $DNSMASQ_PID"
for _ in $(seq 100); do
    busybox nslookup -type=a www.upstream.test $UPSTREAM >/dev/null 2>&1 && break
    sleep 0.1
done
echo "nameserver $UPSTREAM" >"$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf

start_celld
cell() { "$CELL_BIN/cell" "$@"; }
printf 'c2 A\n' >"$WORK/container-name"
printf 'ac2 A\n' >"$WORK/aardvark-name"
printf 'www.upstream.test A\n' >"$WORK/forwarded-name"

# dnsperf's queries per second: qps SERVER FILE COMMAND-PREFIX...
qps() {
    local server=$1 file=$2
    shift 2
    "$@" dnsperf -s "$server" -d "$file" -l "$DURATION" 2>&1 |
        awk '/Queries per second/ {printf "%.0f", $4} /Queries lost/ {lost = $3} END {if (lost > 0) printf " (%d lost)", lost}'
}

# The median latency (ms) of queries sent one at a time for 2 s.
median_ms() {
    local server=$1 file=$2
    shift 2
    "$@" dnsperf -s "$server" -d "$file" -l 2 -q 1 -v 2>&1 | awk '/^> NOERROR/ {print $NF}' | sort -n |
        awk '{a[NR]=$1} END {if (NR == 0) {print "none"; exit} m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.3f", m * 1000}'
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# The query must succeed before anything is measured.
check() {
    local server=$1 name=$2
    shift 2
    "$@" busybox nslookup -type=a "$name" "$server" >/dev/null 2>&1 || {
        echo "$name does not resolve at $server" >&2
        cat "$CELL_TMP/celld.log" >&2
        exit 1
    }
}

echo "resolver benchmark: celld against aardvark-dns $("$AARDVARK" --version 2>/dev/null | awk '{print $2}')"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); dnsperf for ${DURATION}s per figure"
cell image create busybox >/dev/null 2>&1
cell network create -t bridge --subnet 10.65.0.0/16 bench >/dev/null
C1_ID=$(cell run -d --name c1 -n bench busybox sleep 1d)
cell run -d --name c2 -n bench busybox sleep 1d >/dev/null
C1_NS=(nsenter --net="$CELL_TMP/root/netns/$C1_ID")
check 127.0.0.11 c2 "${C1_NS[@]}"
check 127.0.0.11 www.upstream.test "${C1_NS[@]}"

# aardvark-dns as netavark runs it: on the bridge's gateway, in the
# namespace that holds the bridge, told the containers of the network.
ip link add aardbr0 type bridge && ip addr add 10.77.0.1/24 dev aardbr0 && ip link set aardbr0 up
ip netns add ac1
ip link add ac1h type veth peer name eth0 netns ac1
ip link set ac1h master aardbr0 up
ip -n ac1 addr add 10.77.0.2/24 dev eth0 && ip -n ac1 link set eth0 up && ip -n ac1 link set lo up
mkdir -p "$WORK/aardvark"
aardvark_config() {
    local n=$1 i
    {
        echo 10.77.0.1
        echo "$(printf '%064x' 1) 10.77.0.2  ac1"
        echo "$(printf '%064x' 2) 10.77.0.3  ac2"
        for ((i = 3; i <= n; i++)); do
            echo "$(printf '%064x' "$i") 10.77.$((i / 250)).$((i % 250 + 4))  ac$i"
        done
    } >"$WORK/aardvark/bench.new"
    mv "$WORK/aardvark/bench.new" "$WORK/aardvark/bench"
}
aardvark_config 2
"$AARDVARK" --config "$WORK/aardvark" -p 53 run 2>/dev/null
AARDVARK_PID=$(cat "$WORK/aardvark/aardvark.pid")
on_exit "kill $AARDVARK_PID"
AC1_NS=(ip netns exec ac1)
check 10.77.0.1 ac2 "${AC1_NS[@]}"
check 10.77.0.1 www.upstream.test "${AC1_NS[@]}"

declare -A R
R[cell_name_qps]=$(qps 127.0.0.11 "$WORK/container-name" "${C1_NS[@]}")
R[aard_name_qps]=$(qps 10.77.0.1 "$WORK/aardvark-name" "${AC1_NS[@]}")
R[cell_fwd_qps]=$(qps 127.0.0.11 "$WORK/forwarded-name" "${C1_NS[@]}")
R[aard_fwd_qps]=$(qps 10.77.0.1 "$WORK/forwarded-name" "${AC1_NS[@]}")
R[cell_name_ms]=$(median_ms 127.0.0.11 "$WORK/container-name" "${C1_NS[@]}")
R[aard_name_ms]=$(median_ms 10.77.0.1 "$WORK/aardvark-name" "${AC1_NS[@]}")
R[cell_fwd_ms]=$(median_ms 127.0.0.11 "$WORK/forwarded-name" "${C1_NS[@]}")
R[aard_fwd_ms]=$(median_ms 10.77.0.1 "$WORK/forwarded-name" "${AC1_NS[@]}")
# For reference: the upstream server asked directly from the host.
R[direct_fwd_qps]=$(qps $UPSTREAM "$WORK/forwarded-name" env)
R[direct_fwd_ms]=$(median_ms $UPSTREAM "$WORK/forwarded-name" env)
ratio() { awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN {if (b > 0) printf "%.1fx", a / b; else print "-"}'; }

echo
printf '| %-20s | %-14s | %-14s | %-8s |\n' "" "celld" "aardvark-dns" "ratio"
printf '|%s|\n' "----------------------|----------------|----------------|----------"
printf '| %-20s | %-14s | %-14s | %-8s |\n' "container name, qps" "${R[cell_name_qps]}" "${R[aard_name_qps]}" "$(ratio "${R[cell_name_qps]}" "${R[aard_name_qps]}")"
printf '| %-20s | %-14s | %-14s | %-8s |\n' "forwarded name, qps" "${R[cell_fwd_qps]}" "${R[aard_fwd_qps]}" "$(ratio "${R[cell_fwd_qps]}" "${R[aard_fwd_qps]}")"
printf '| %-20s | %-14s | %-14s | %-8s |\n' "container name, median" "${R[cell_name_ms]} ms" "${R[aard_name_ms]} ms" ""
printf '| %-20s | %-14s | %-14s | %-8s |\n' "forwarded name, median" "${R[cell_fwd_ms]} ms" "${R[aard_fwd_ms]} ms" ""
echo "the upstream dnsmasq asked directly from the host: ${R[direct_fwd_qps]} qps, median ${R[direct_fwd_ms]} ms"

echo
echo "memory with N containers named (each running on the network):"
printf '| %-6s | %-14s | %-22s | %-18s |\n' "N" "celld RSS" "celld median (name)" "aardvark-dns RSS"
printf '|%s|\n' "--------|----------------|------------------------|--------------------"
n=2
for target in 2 10 100 "$N_MAX"; do
    while ((n < target)); do
        n=$((n + 1))
        cell run -d --name "c$n" -n bench busybox sleep 1d >/dev/null
    done
    aardvark_config "$n"
    kill -HUP "$AARDVARK_PID"
    check 10.77.0.1 "ac$n" "${AC1_NS[@]}"
    check 127.0.0.11 "c$n" "${C1_NS[@]}"
    printf '| %-6s | %-14s | %-22s | %-18s |\n' "$n" "$(($(rss_kb "$CELLD_PID") / 1024)) MiB" \
        "$(median_ms 127.0.0.11 "$WORK/container-name" "${C1_NS[@]}") ms" "$(($(rss_kb "$AARDVARK_PID") / 1024)) MiB"
    [ "$target" = "$N_MAX" ] && break
done
