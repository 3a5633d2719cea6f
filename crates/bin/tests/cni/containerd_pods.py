"""Two pods through containerd's CRI on a CNI conflist, checked from outside.

Run by containerd-pods.sh inside its sandbox (a network, mount and pid
namespace with containerd running and an "upstream" namespace at
198.51.100.1 behind the sandbox host's em0, 198.51.100.2). It makes the
calls a kubelet makes (Status, RunPodSandbox, PodSandboxStatus,
StopPodSandbox twice, RemovePodSandbox) for two pods and checks, around
them, what containerd's CNI calls left in the kernel:

  - Status reports NetworkReady (containerd 2.1 asks the plugin's STATUS);
  - each pod's eth0 holds the address containerd reports, with the
    subnet's mask (vnet) or as a /32 (ipnet), and a default route via the
    gateway (through eth0 itself on a routed loopback network);
  - the sandbox host has a veth per pod, and (with --tables) elements of
    cell-cni's own nftables tables name each pod's address;
  - pod 1 reaches pod 2 over TCP from its own address, and reaches
    upstream through NAT (upstream sees 198.51.100.2);
  - with --ports: pod 1 has a port mapping 8080 -> 80 (containerd passes
    it as runtimeConfig.portMappings), and it works from upstream and from
    the node itself;
  - after Stop and Remove: no veth, no element naming a pod's address or
    MAC, no lease naming a pod (--lease-cmd), the pods' netns gone.

Each check that something is gone has its positive control: the same
check saw it while the pods ran. Prints one line per step and exits 1 if
any failed.
"""
import argparse
import ipaddress
import json
import os
import subprocess
import sys
import time

import grpc

p = argparse.ArgumentParser()
p.add_argument("--socket", required=True)
p.add_argument("--stubs", required=True)
p.add_argument("--logdir", required=True)
p.add_argument("--conflist", required=True)
p.add_argument("--upstream-netns", required=True)
p.add_argument("--tables", default="", help="nftables tables the plugin owns, 'family name,...'")
p.add_argument("--lease-cmd", default="", help="a shell command printing the plugin's leases")
p.add_argument("--ports", action="store_true", help="give pod 1 a port mapping, check it from upstream")
p.add_argument("--refused", default="", help="the conflist is bad: containerd must report this text and make nothing")
p.add_argument("--then-conflist", default="", help="with --refused: a good conflist, for the positive control")
args = p.parse_args()
sys.path.insert(0, args.stubs)
import api_pb2 as pb  # noqa: E402
import api_pb2_grpc as rpc  # noqa: E402

UPSTREAM_IP = "198.51.100.1"
NODE_IP = "198.51.100.2"
failures = []


def check(what, ok, detail=""):
    print("--- %s: %s%s" % (what, "ok" if ok else "FAILED", "" if ok or not detail else ": " + detail))
    if not ok:
        failures.append(what)
    return ok


def run(cmd, netns=None, check_rc=True, timeout=30):
    if netns:
        cmd = ["nsenter", "--net=" + netns] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


def ip_json(args_, netns=None):
    out = run(["ip", "-j"] + args_, netns).stdout
    return json.loads(out) if out.strip() else []


# ----------------------------------------------------------- the network ---
# with --refused the conflist is bad; the expectations are the good one's
conf = json.load(open(args.then_conflist if args.refused else args.conflist))
plugin = conf["plugins"][0]
if plugin["type"] == "cell-cni":
    subnet = ipaddress.ip_network(plugin["subnet"])
    network_type = plugin.get("network", "bridge")
    driver = plugin.get("driver", "vnet" if network_type == "bridge" else "ipnet")
    # a loopback network is routed: no gateway, the default route is the veth
    gateway = None if network_type == "loopback" else plugin.get("gateway") or str(next(subnet.hosts()))
    # vnet gets the subnet's mask; ipnet a /32
    prefixlen = subnet.prefixlen if driver == "vnet" else 32
else:  # Debian's reference bridge + host-local, to check this harness itself
    subnet = ipaddress.ip_network(plugin["ipam"]["ranges"][0][0]["subnet"])
    gateway = str(next(subnet.hosts()))
    prefixlen = subnet.prefixlen

# A one-shot TCP server run in a namespace: prints "listening" once bound,
# then "PEER_IP DATA" of the first connection.
SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
print("listening", flush=True)
c, peer = s.accept(); c.settimeout(10)
data = b""
while True:
    chunk = c.recv(4096)
    if not chunk: break
    data += chunk
print(peer[0], data.decode().strip(), flush=True)
"""


def serve(netns, port):
    srv = subprocess.Popen(["nsenter", "--net=" + netns, "python3", "-c", SERVER, str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = srv.stdout.readline().strip()
    if line != "listening":
        srv.kill()
        raise RuntimeError("server in %s did not start: %s" % (netns, srv.stderr.read()))
    return srv


def send(netns, ip, port, text):
    """Sends text from netns to ip:port; returns what the server saw ("peer data") or the error."""
    return run(["busybox", "sh", "-c", "echo %s | busybox nc -w 5 %s %d" % (text, ip, port)],
               netns, check_rc=False)


def conversation(what, srv_netns, srv_port, cli_netns, dst_ip, dst_port, want_peer):
    srv = serve(srv_netns, srv_port)
    try:
        r = send(cli_netns, dst_ip, dst_port, "testing")
        out, err = srv.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        srv.kill()
        return check(what, False, "no connection arrived (client: rc=%d %s)" % (r.returncode, r.stderr.strip()))
    got = out.strip()
    return check(what, got == "%s testing" % want_peer, "server saw %r, wanted %r" % (got, "%s testing" % want_peer))


def host_veths():
    return sorted(l["ifname"] for l in ip_json(["link", "show", "type", "veth"]) if l["ifname"] != "em0")


def firewall_elements():
    """Every element of the plugin's tables, as JSON text (so an address or MAC can be looked for)."""
    found = []
    for table in filter(None, (t.strip() for t in args.tables.split(","))):
        family, name = table.split()
        r = run(["nft", "-j", "list", "table", family, name], check_rc=False)
        if r.returncode != 0:
            continue  # the table went away with its last pod: nothing left in it
        for obj in json.loads(r.stdout)["nftables"]:
            for kind in ("set", "map"):
                for elem in obj.get(kind, {}).get("elem", []):
                    found.append("%s %s: %s" % (table, obj[kind]["name"], json.dumps(elem)))
    return found


def naming(lines, needles):
    return [l for l in lines if any(n in l for n in needles)]


def leases():
    if not args.lease_cmd:
        return []
    return run(["sh", "-c", args.lease_cmd]).stdout.splitlines()


# ----------------------------------------------------------------- CRI ---
rt = rpc.RuntimeServiceStub(grpc.insecure_channel("unix://" + args.socket))
v = rt.Version(pb.VersionRequest(version="v1"))
print("=== CRI runtime:", v.runtime_name, v.runtime_version, "API", v.runtime_api_version)


def network_ready():
    st = rt.Status(pb.StatusRequest())
    ready = {c.type: (c.status, c.reason, c.message) for c in st.status.conditions}
    return ready.get("NetworkReady", (False, "", "no NetworkReady condition"))


if not args.refused:
    ready = network_ready()
    check("Status: NetworkReady (the plugin's STATUS)", ready[0], str(ready))


def pod_config(name, ports):
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid="uid-" + name, namespace="default", attempt=0),
        hostname=name, log_directory=args.logdir,
        port_mappings=ports,
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
            namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.POD, ipc=pb.POD))))


def tables_present():
    return [t for t in filter(None, (t.strip() for t in args.tables.split(",")))
            if run(["nft", "list", "table"] + t.split(), check_rc=False).returncode == 0]


if args.refused:
    # A bad conflist: containerd reports the plugin's error and no pod starts,
    # and nothing is made. Then, as the positive control of those "nothing"
    # checks, the good conflist replaces it and a pod does get a veth, tables
    # and a lease, which its removal takes away again.
    ready = network_ready()
    check("Status: NetworkReady false, naming %r" % args.refused, not ready[0] and args.refused in ready[2], str(ready))
    try:
        rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("bad", [])), timeout=120)
        check("RunPodSandbox on the bad conflist fails", False, "it succeeded")
    except grpc.RpcError as e:
        check("RunPodSandbox on the bad conflist fails, naming %r" % args.refused, args.refused in e.details(),
              e.details())
    check("no veth after the refused pod", host_veths() == [], str(host_veths()))
    check("no table of %s after the refused pod" % args.tables, tables_present() == [], str(tables_present()))
    check("no lease after the refused pod", leases() == [], str(leases()))

    conf_file = args.conflist  # the file containerd reads, replaced whole
    with open(conf_file + ".new", "w") as f:
        f.write(open(args.then_conflist).read())
    os.rename(conf_file + ".new", conf_file)
    deadline = time.time() + 60
    while not network_ready()[0] and time.time() < deadline:
        time.sleep(0.1)
    ready = network_ready()
    check("Status: NetworkReady once the good conflist is in place", ready[0], str(ready))
    try:
        r = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("good", [])), timeout=120)
        check("RunPodSandbox on the good conflist (positive control)", True)
        check("a veth for it (positive control)", len(host_veths()) == 1, str(host_veths()))
        check("the tables %s (positive control)" % args.tables, len(tables_present()) == len(args.tables.split(",")),
              str(tables_present()))
        check("a lease for it (positive control)", len(leases()) == 1, str(leases()))
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=r.pod_sandbox_id), timeout=60)
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=r.pod_sandbox_id), timeout=60)
        check("no veth, table or lease once it is removed", host_veths() == [] and tables_present() == [] and
              leases() == [], "%s %s %s" % (host_veths(), tables_present(), leases()))
    except grpc.RpcError as e:
        check("RunPodSandbox on the good conflist (positive control)", False, e.details())
    print("=== %s" % ("PASS" if not failures else "FAILED: " + "; ".join(failures)))
    sys.exit(1 if failures else 0)

pods = {}
pod1_ports = [pb.PortMapping(protocol=pb.TCP, container_port=80, host_port=8080)] if args.ports else []
for name, ports in (("pod1", pod1_ports), ("pod2", [])):
    t0 = time.time()
    try:
        r = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config(name, ports)), timeout=120)
    except grpc.RpcError as e:
        check("RunPodSandbox %s (CNI ADD)" % name, False, e.details())
        continue
    s = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=r.pod_sandbox_id, verbose=True))
    info = json.loads(s.info.get("info", "{}"))
    netns = next(n["path"] for n in info["runtimeSpec"]["linux"]["namespaces"] if n["type"] == "network")
    pods[name] = {"id": r.pod_sandbox_id, "ip": s.status.network.ip, "netns": netns}
    check("RunPodSandbox %s (CNI ADD, %.2fs): ip %s" % (name, time.time() - t0, s.status.network.ip),
          ipaddress.ip_address(s.status.network.ip or "0.0.0.0") in subnet,
          "not in %s; cniResult %s" % (subnet, json.dumps(info.get("cniResult"))))

if len(pods) == 2:
    macs = []
    for name, pod in pods.items():
        eth0 = ip_json(["addr", "show", "dev", "eth0"], pod["netns"])
        addrs = [(a["local"], a["prefixlen"]) for a in eth0[0]["addr_info"] if a["family"] == "inet"] if eth0 else []
        check("%s eth0 holds %s/%d" % (name, pod["ip"], prefixlen), (pod["ip"], prefixlen) in addrs,
              "eth0 has %s" % addrs)
        macs.append(eth0[0]["address"] if eth0 else "none")
        default = ip_json(["route", "show", "default"], pod["netns"])
        check("%s default route via %s" % (name, gateway or "eth0"),
              [(d.get("gateway"), d.get("dev")) for d in default] == [(gateway, "eth0")], "routes: %s" % default)
    pod_ips = [pod["ip"] for pod in pods.values()]
    veths_up = host_veths()
    check("sandbox host has a veth per pod (positive control)", len(veths_up) == 2, str(veths_up))
    if args.tables:
        elems = firewall_elements()
        for ip in pod_ips:
            check("an element of %s names %s (positive control)" % (args.tables, ip), naming(elems, [ip]), str(elems))
    if args.lease_cmd:
        held = leases()
        for name, pod in pods.items():
            check("a lease names %s (positive control)" % pod["ip"], naming(held, [pod["ip"]]), str(held))

    conversation("pod1 -> pod2 over TCP, from pod1's own address", pods["pod2"]["netns"], 80,
                 pods["pod1"]["netns"], pods["pod2"]["ip"], 80, pods["pod1"]["ip"])
    conversation("pod2 -> upstream through NAT (seen from %s)" % NODE_IP, args.upstream_netns, 9000,
                 pods["pod2"]["netns"], UPSTREAM_IP, 9000, NODE_IP)
    if args.ports:
        conversation("upstream -> node %s:8080 -> pod1:80 (portMappings)" % NODE_IP, pods["pod1"]["netns"], 80,
                     args.upstream_netns, NODE_IP, 8080, UPSTREAM_IP)
        srv = serve(pods["pod1"]["netns"], 80)  # from the node itself, whatever source it picks
        r = send(None, NODE_IP, 8080, "testing")
        try:
            out, _ = srv.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            srv.kill()
            out = "nothing (client: rc=%d %s)" % (r.returncode, r.stderr.strip())
        check("node -> its own %s:8080 -> pod1:80 (portMappings)" % NODE_IP, out.strip().endswith(" testing"), out)

    for name, pod in pods.items():
        for what in ("StopPodSandbox %s (CNI DEL)", "StopPodSandbox %s again (CNI DEL, idempotent)"):
            try:
                rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod["id"]), timeout=60)
                check(what % name, True)
            except grpc.RpcError as e:
                check(what % name, False, e.details())
    veths_down = host_veths()
    check("no veth left after Stop", veths_down == [], str(veths_down))
    if args.tables:
        left = naming(firewall_elements(), pod_ips + macs + ['"%s"' % v for v in veths_up])
        check("no element of %s names a pod's address, MAC or veth" % args.tables, left == [], str(left))
    if args.lease_cmd:
        left = naming(leases(), pod_ips)
        check("no lease names a pod", left == [], str(left))
    for name, pod in pods.items():
        try:
            rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod["id"]), timeout=60)
            check("RemovePodSandbox %s (CNI DEL)" % name, True)
        except grpc.RpcError as e:
            check("RemovePodSandbox %s (CNI DEL)" % name, False, e.details())
    gone = [pod["netns"] for pod in pods.values() if run(["test", "-e", pod["netns"]], check_rc=False).returncode == 0]
    check("the pods' netns are gone after Remove", gone == [], str(gone))
    check("no veth left after Remove", host_veths() == [], str(host_veths()))

print("=== %s" % ("PASS" if not failures else "FAILED: " + "; ".join(failures)))
sys.exit(1 if failures else 0)
