#!/usr/bin/env bash
# Renders the example topology the README shows (docs/topology.svg and
# docs/topology.png) with `cell network show --format dot | dot`: in a
# sandbox with an uplink em0, the public network with a web server that
# publishes a port, a private bridge sized for 4 containers (pot's -S 4)
# with two containers, and an internal loopback network. Needs graphviz.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dot >/dev/null || { echo "graphviz (dot) is needed: apt-get install graphviz" >&2; exit 1; }
source scripts/sandbox.sh
ip link add em0 type veth peer name em0peer
ip addr add 198.51.100.2/24 dev em0
ip link set em0 up && ip link set em0peer up
ip route add default via 198.51.100.1
start_celld
cell() { "$CELL_BIN/cell" "$@" >/dev/null; }
cell image create busybox
cell run -d --name web -l vnet -n public -p 8080:80 busybox sleep 100000
cell network create -t bridge --size 4 --subnet6 auto private
cell run -d --name app -l vnet -n private -n public busybox sleep 100000
cell run -d --name db -n private busybox sleep 100000
cell network create --internal backup
cell run -d --name store -n backup busybox sleep 100000
"$CELL_BIN/cell" network show
"$CELL_BIN/cell" network show --format dot >docs/topology.dot
dot -Tsvg docs/topology.dot >docs/topology.svg
dot -Tpng -Gdpi=80 docs/topology.dot >docs/topology.png
echo "wrote docs/topology.dot, docs/topology.svg and docs/topology.png"
