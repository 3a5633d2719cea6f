#!/usr/bin/env bash
# The demo: seed 000 (Kleene's host driver) and seed 002 (Docker's host
# mode) on Linux, in a sandbox namespace with a simulated uplink `em0`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh

# "The internet": a namespace at 198.51.100.1 behind the sandbox's em0.
ip netns add upstream
ip link add em0 type veth peer name uplink netns upstream
ip addr add 198.51.100.2/24 dev em0 && ip link set em0 up
ip -n upstream addr add 198.51.100.1/24 dev uplink && ip -n upstream link set uplink up && ip -n upstream link set lo up
on_exit 'ip netns del upstream'
start_celld
cell() { "$CELL_BIN/cell" "$@"; }
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$@"; "$@" || echo "(exit code $?)"; }

echo "== Host networking (seed 000): the container inherits the host's interfaces"
run ip addr
run cell run busybox ip addr
echo
echo "== ...but it may not modify them (CAP_NET_ADMIN is dropped)"
run ip addr add 127.0.0.2/8 dev lo
run cell run busybox ip addr add 127.0.0.3/8 dev lo
echo
echo "== ...and publishing ports is not possible"
run cell run -p 8080 busybox
echo
echo "== Host mode deep dive (seed 002): no veth pair, same addresses as the host"
run cell run -d --name test3 busybox sh -c "while true; do sleep 3600; done"
run cell network inspect host
run cell exec test3 ip -o link
echo "   the container reaches the upstream host with the host's own address:"
run cell run -J allow.raw_sockets busybox ping -c 1 -W 2 198.51.100.1
echo
echo "== Raw sockets are off unless -J allow.raw_sockets"
run cell run busybox ping -c 1 -W 1 198.51.100.1
echo
echo "== A container with networking disabled has only lo"
run cell run -l disabled busybox ip addr
echo
echo "== Containers, as Kleene lists and inspects them"
run cell lsc -a
run cell container inspect test3
run cell rm -f test3
