#!/usr/bin/env bash
# The demo: seed 000 (Kleene's host driver), seed 002 (Docker's host mode),
# seed 001 (an ipnet container on a loopback network) and seed 004 (pot's
# pools, public and private bridges, exported ports, DNS and stacks) on Linux, in a
# sandbox namespace with a simulated uplink `em0` to "the internet".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sandbox.sh

# "The internet": a namespace at 198.51.100.1 behind the sandbox's em0.
ip netns add upstream
ip link add em0 type veth peer name uplink netns upstream
ip addr add 198.51.100.2/24 dev em0 && ip link set em0 up
ip -n upstream addr add 198.51.100.1/24 dev uplink && ip -n upstream link set uplink up && ip -n upstream link set lo up
# em0 carries the sandbox's default route, so networks NAT out of it by
# default, as Kleene's do.
ip route add default via 198.51.100.1 dev em0
on_exit 'ip netns del upstream'
# A web server in "the internet", whose page tells where a request came from.
WWW=$(mktemp -d /tmp/cell-www-XXXXXX)
on_exit 'rm -rf "$WWW"'
mkdir "$WWW/cgi-bin"
cat >"$WWW/cgi-bin/hello" <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "hello from upstream (198.51.100.1); you came from $REMOTE_ADDR"
CGI
chmod +x "$WWW/cgi-bin/hello"
ip netns exec upstream busybox httpd -f -p 198.51.100.1:80 -h "$WWW" &
HTTPD_PID=$!
on_exit 'kill $HTTPD_PID 2>/dev/null'
start_celld
cell() { "$CELL_BIN/cell" "$@"; }
# Prints a command as one would type it (arguments with blanks or shell
# characters in double quotes).
say() {
    local words=() a
    for a in "$@"; do
        if [[ $a =~ [[:space:]\|\;\&\<\>\$] ]]; then words+=("\"$a\""); else words+=("$a"); fi
    done
    printf '\n\033[1m$ %s\033[0m\n' "${words[*]}"
}
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

echo
echo "== seed 001: IPNet networking (the stopped containers above are pruned first)"
run cell container prune
echo
echo "== seed 001: a loopback network for the test containers"
run cell network create --subnet 10.2.3.0/24 testnet
echo
echo "== seed 001: an ipnet container on it sees only its own address, 10.2.3.1/32 on cell0 (and lo)"
run cell run --name strange_moser -l ipnet -n testnet busybox ip addr
echo
echo "== seed 001: a second container reaches \"the internet\" (a web server at 198.51.100.1, beyond em0), NATed"
run cell run --name hungry_knuth -l ipnet -n testnet busybox wget -q -O - http://198.51.100.1/cgi-bin/hello
echo
echo "== seed 001: inspecting the last container: an endpoint on testnet with 10.2.3.2, a veth (epair) host end"
run cell container inspect hungry_knuth
echo
echo "== seed 001: inspecting the network: type loopback, interface cell0, NAT out of em0, both endpoints"
run cell network inspect testnet
echo
echo "== seed 001: inter-container communication on the same network"
run cell lsc -a
echo
echo "== seed 001: the two started again as thin VMs. A cell container's command is its init, so the"
echo "   one-shot ones are replaced by long-running ones with the same names and addresses"
run cell rm strange_moser hungry_knuth
run cell run -d --name strange_moser -l ipnet -n testnet --ip 10.2.3.1 busybox sleep 1000000
run cell run -d --name hungry_knuth -l ipnet -n testnet --ip 10.2.3.2 busybox sleep 1000000
run cell lsc -a
echo
echo "== seed 001: ping is refused, as raw sockets are off in ipnet containers"
run cell exec hungry_knuth ping -c 1 -W 2 10.2.3.1
echo
echo "== seed 001: so TCP it is. Terminal 1: a listener in strange_moser (attached, in the background)"
LISTENER_OUT=$(mktemp /tmp/cell-listener-XXXXXX)
on_exit 'rm -f "$LISTENER_OUT"'
say cell exec strange_moser nc -l -p 4000
cell exec strange_moser nc -l -p 4000 >"$LISTENER_OUT" 2>&1 &
LISTENER_PID=$!
for _ in $(seq 100); do
    cell exec strange_moser netstat -ltn 2>/dev/null | grep -q ':4000 ' && break
    sleep 0.05
done
echo
echo "== seed 001: Terminal 2: hungry_knuth connects to 10.2.3.1:4000 and sends \"testing\""
run cell exec hungry_knuth sh -c "echo testing | nc 10.2.3.1 4000"
echo
echo "== seed 001: Terminal 1: what the listener received"
# nc ends when the other side closes; give up after 10 s rather than hang.
for _ in $(seq 200); do kill -0 "$LISTENER_PID" 2>/dev/null || break; sleep 0.05; done
kill "$LISTENER_PID" 2>/dev/null || true
code=0
wait "$LISTENER_PID" || code=$?
say cell exec strange_moser nc -l -p 4000
cat "$LISTENER_OUT"
[ "$code" = 0 ] || echo "(exit code $code)"
echo
echo "== seed 001: with -J allow.raw_sockets, ping works too"
run cell run -J allow.raw_sockets -l ipnet -n testnet busybox ping -c 1 -W 2 10.2.3.1
echo
echo "== seed 001: removing the containers and the network removes their links: only lo and em0 are left"
run cell rm -f strange_moser hungry_knuth
run cell container prune
run cell network rm testnet
run ip -br link

echo
echo "== seed 004 (pot): the address pool and the public network, there from celld's first start"
run cell network show
echo
echo "== seed 004: a pot on the public bridge (pot create -N public-bridge -i auto -S ipv4): an address"
echo "   from the pool, IPv6 off inside, and \"the internet\" through NAT"
run cell run -d --name casserole4 -l vnet -n public -S ipv4 busybox sleep 1000000
run cell exec casserole4 ip addr
run cell run -l vnet -n public busybox wget -q -O - http://198.51.100.1/cgi-bin/hello
echo
echo "== seed 004: a private bridge sized for 4 pots (pot create-private-bridge -B stove -S 4): a /29"
run cell network create -t bridge --size 4 stove
run cell network show stove
echo
echo "== seed 004: exported ports (pot export-ports -e 80:30080 -e 443): DNAT in the kernel, no proxy;"
echo "   the second host port is picked by celld"
run cell run -d --name casserole -l vnet -n stove -p 30080:80 -p :443 busybox \
    sh -c 'mkdir -p /www && hostname >/www/index.html && httpd -f -p 80 -h /www'
run cell port casserole
for _ in $(seq 100); do
    cell exec casserole netstat -ltn 2>/dev/null | grep -q ':80 ' && break
    sleep 0.05
done
echo "   from \"the internet\" (198.51.100.1) to the host's address on em0, port 30080:"
say ip netns exec upstream busybox wget -q -O - http://198.51.100.2:30080/
ip netns exec upstream busybox wget -q -O - http://198.51.100.2:30080/ || echo "(exit code $?)"
echo "   and from the host itself, on 127.0.0.1:"
run busybox wget -q -O - http://127.0.0.1:30080/
echo
echo "== seed 004: DNS. By default (--dns cell) a pot resolves the names of pots it shares a network with"
run cell run --name client -l vnet -n stove busybox nslookup casserole
echo "   ...and not those of pots on other networks (casserole4 is on public):"
run cell run -l vnet -n stove busybox nslookup casserole4
echo "   the other modes: inherit (the host's resolv.conf), off, custom:FILE, container:NAME"
run cell run -l vnet -n stove --dns container:casserole busybox cat /etc/resolv.conf
echo
echo "== seed 004: network stacks on the host's stack (pot -N inherit -S ipv4): IPv6 sockets are refused"
run cell run -S ipv4 busybox nc -w 1 ::1 9
echo
echo "== seed 004: the topology once more, then everything removed"
run cell network show stove
run cell rm -f casserole casserole4 client
run cell container prune
run cell network rm stove
