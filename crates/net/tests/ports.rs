//! Kernel tests of published ports (issue 8): real traffic through the
//! DNAT maps of `inet cell`, from every kind of client.
//!
//! One fresh network namespace plays the host. It has an uplink `em0`
//! (198.51.100.2, 203.0.113.1 and 2001:db8::2) to an "outside" namespace
//! (198.51.100.1, 2001:db8::1), a bridge network `web` with icc off and
//! two containers, a second bridge network `other` with one, and a
//! loopback (routed) network with one; all made by the real driver
//! functions. Each server in a container answers with the client address
//! it sees, so every path also proves which address the container saw.
//! The test skips with a message when not root.

use cell_core::model::{Endpoint, Network, NetworkDriver, NetworkType};
use cell_core::port::Protocol;
use cell_net::ports::{self, PortForward};
use cell_net::{
    ContainerNet, HostKernel, Links, NetlinkLinks, Nft, ProcSysctl, create_netns, delete_netns, driver,
    in_netns, ruleset,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs `body` in a fresh network namespace, or skips when not root.
fn in_fresh_netns(test: &str, body: impl FnOnce() + Send) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped {test}: needs root");
        return;
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: changes only this thread's network namespace.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            body()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
}

/// A named netns that is deleted when dropped.
struct NamedNetns(PathBuf);

impl NamedNetns {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("cell-ports-test-{}-{tag}", std::process::id()));
        let _ = delete_netns(&path);
        create_netns(&path).expect("create netns");
        // Addresses usable at once: no duplicate address detection.
        in_netns(&path, || write_sysctl("net/ipv6/conf/default/accept_dad", "0")).unwrap();
        Self(path)
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        delete_netns(&self.0).unwrap();
    }
}

/// Writes a sysctl of the calling thread's namespace (always a test's own).
fn write_sysctl(key: &str, value: &str) {
    std::fs::write(format!("/proc/sys/{key}"), value).unwrap_or_else(|e| panic!("{key}: {e}"));
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Serves TCP and UDP on port 80 (all addresses, both families) in `ns`:
/// each answer is the client address the server saw.
fn serve_who(ns: &NamedNetns) {
    let (tcp, udp) = in_netns(&ns.0, || {
        (
            TcpListener::bind("[::]:80").unwrap(),
            UdpSocket::bind("[::]:80").unwrap(),
        )
    })
    .unwrap();
    std::thread::spawn(move || {
        for stream in tcp.incoming() {
            let Ok(mut stream) = stream else { continue };
            let peer = stream.peer_addr().unwrap().ip().to_canonical();
            let _ = stream.write_all(peer.to_string().as_bytes());
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(peer.ip().to_canonical().to_string().as_bytes(), peer);
        }
    });
}

/// One attempt: the address the server at `to` saw us come from.
fn ask_once(to: SocketAddr, protocol: Protocol, timeout: Duration) -> Option<IpAddr> {
    let mut answer = String::new();
    match protocol {
        Protocol::Tcp => {
            let mut stream = TcpStream::connect_timeout(&to, timeout).ok()?;
            stream.set_read_timeout(Some(timeout)).unwrap();
            stream.read_to_string(&mut answer).ok()?;
        }
        Protocol::Udp => {
            let local = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            let socket = UdpSocket::bind(local).unwrap();
            socket.set_read_timeout(Some(timeout)).unwrap();
            socket.send_to(b"?", to).ok()?;
            let mut buf = [0u8; 64];
            let (n, _) = socket.recv_from(&mut buf).ok()?;
            answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    answer.parse().ok()
}

/// Asks from `from` (a namespace, or the host) until an answer comes or
/// `within` has passed.
fn ask(from: Option<&NamedNetns>, to: &str, protocol: Protocol, within: Duration) -> Option<IpAddr> {
    let to = sock(to);
    let deadline = Instant::now() + within;
    let attempt = || loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let once = ask_once(
            to,
            protocol,
            left.min(Duration::from_millis(700))
                .max(Duration::from_millis(100)),
        );
        if once.is_some() || Instant::now() >= deadline {
            return once;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    match from {
        Some(ns) => in_netns(&ns.0, attempt).unwrap(),
        None => attempt(),
    }
}

/// Reachable: the answer, within a generous deadline (only to fail).
fn reach(from: Option<&NamedNetns>, to: &str, protocol: Protocol) -> IpAddr {
    ask(from, to, protocol, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{to}/{protocol} from {:?} got no answer", from.map(|n| &n.0)))
}

/// Not reachable: no answer within two seconds. Every use follows a
/// positive control on the same path.
fn unreachable(from: Option<&NamedNetns>, to: &str, protocol: Protocol) -> bool {
    ask(from, to, protocol, Duration::from_secs(2)).is_none()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn network(name: &str, id: &str, net_type: NetworkType, third: u8, icc: bool) -> Network {
    let bridge = net_type == NetworkType::Bridge;
    Network {
        id: id.into(),
        name: name.into(),
        net_type,
        interface: format!("cell{third}"),
        subnet: Some(format!("10.{third}.0.0/24").parse().unwrap()),
        subnet6: Some(format!("fd00:{third}::/64").parse().unwrap()),
        gateway: bridge.then(|| format!("10.{third}.0.1").parse().unwrap()),
        gateway6: bridge.then(|| format!("fd00:{third}::1").parse().unwrap()),
        nat: Some("em0".into()),
        icc,
        internal: false,
        antispoof: true,
    }
}

fn endpoint(net: &Network, third: u8, host: u8) -> Endpoint {
    Endpoint {
        // The MAC comes from the first ten hex digits: keep them distinct.
        id: format!("{third:02x}{host:02x}aaaaaaaa"),
        network_id: net.id.clone(),
        container_id: format!("{third:02x}{host:02x}bbbbbbbb"),
        epair: None,
        ip_address: Some(format!("10.{third}.0.{host}").parse().unwrap()),
        ip_address6: Some(format!("fd00:{third}::{host}").parse().unwrap()),
        mac: None,
    }
}

fn tcp(host_ip: Option<&str>, host_port: u16, container_ip: IpAddr) -> PortForward {
    PortForward {
        host_ip: host_ip.map(ip),
        host_port,
        container_ip,
        container_port: 80,
        protocol: Protocol::Tcp,
    }
}

/// Every element of the port maps of `inet cell`.
fn port_map_elements(nft: &Nft) -> Vec<Value> {
    let listing = nft.list_table("inet", ruleset::TABLE).unwrap();
    listing["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("map"))
        .filter(|m| m["name"].as_str().unwrap().contains("ports"))
        .flat_map(|m| {
            m.get("elem")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// Whether a datagram sent from `from` to the host's `sink` arrives there
/// within a second (or, for the positive case, within ten seconds).
fn datagram_arrives(from: &NamedNetns, sink: &UdpSocket) -> bool {
    let to = sink.local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    sink.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 16];
    while Instant::now() < deadline {
        in_netns(&from.0, || {
            let local = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            let _ = UdpSocket::bind(local).unwrap().send_to(b"x", to);
        })
        .unwrap();
        if sink.recv_from(&mut buf).is_ok() {
            return true;
        }
    }
    false
}

/// Runs a command of iproute2 inside the namespace at `path`.
fn nsenter(path: &Path, command: &str) {
    let status = std::process::Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args(command.split(' '))
        .status()
        .unwrap();
    assert!(status.success(), "{command}: {status}");
}

/// The handles of the rules of one chain of `inet cell`.
fn rule_handles(nft: &Nft, chain: &str) -> Vec<u64> {
    let listing = nft.list_table("inet", ruleset::TABLE).unwrap();
    listing["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["chain"] == chain)
        .map(|r| r["handle"].as_u64().unwrap())
        .collect()
}

fn rule_count(nft: &Nft) -> usize {
    let mut n = 0;
    for family in ["inet", "bridge"] {
        let listing = nft.list_table(family, ruleset::TABLE).unwrap();
        n += listing["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o.get("rule").is_some())
            .count();
    }
    n
}

/// A container: its namespace, endpoint, and open kernel.
struct Container {
    ns: NamedNetns,
    ep: Endpoint,
}

fn start(
    k: HostKernel<'_>,
    net: &Network,
    ep: Endpoint,
    driver_kind: NetworkDriver,
    forwards: &[PortForward],
) -> Container {
    let ns = NamedNetns::new(&ep.id);
    let inside = ContainerNet::open(&ns.0).unwrap();
    inside.links().set_up("lo").unwrap();
    driver::attach_with_ports(
        k,
        inside.kernel(),
        net,
        &ep,
        driver_kind,
        &ports::forwards_of(&ep, forwards),
    )
    .unwrap();
    drop(inside);
    serve_who(&ns);
    Container { ns, ep }
}

#[test]
fn published_ports_answer_from_everywhere() {
    in_fresh_netns("published_ports_answer_from_everywhere", || {
        write_sysctl("net/ipv6/conf/default/accept_dad", "0");
        let host = NetlinkLinks::new().unwrap();
        host.set_up("lo").unwrap();
        let nft = Nft::new().unwrap();
        let k = HostKernel {
            links: &host,
            firewall: &nft,
            sysctl: &ProcSysctl,
        };
        nft.apply(&ruleset::base_ruleset()).unwrap();
        let rules_at_start = rule_count(&nft);

        // The uplink and the outside world.
        let outside = NamedNetns::new("outside");
        let outside_fd = std::fs::File::open(&outside.0).unwrap();
        host.create_veth_pair("em0", "up1", Some(outside_fd.as_raw_fd()))
            .unwrap();
        host.set_up("em0").unwrap();
        for a in ["198.51.100.2/24", "203.0.113.1/24", "2001:db8::2/64"] {
            host.add_address("em0", net(a)).unwrap();
        }
        let up = NetlinkLinks::in_netns(&outside.0).unwrap();
        up.set_up("lo").unwrap();
        up.set_up("up1").unwrap();
        up.add_address("up1", net("198.51.100.1/24")).unwrap();
        up.add_address("up1", net("2001:db8::1/64")).unwrap();
        up.add_route(net("203.0.113.0/24"), "up1", None).unwrap();

        let web = network("web", "0000000000a1", NetworkType::Bridge, 1, false);
        let other = network("other", "0000000000a2", NetworkType::Bridge, 3, true);
        let routed = network("routed", "0000000000a3", NetworkType::Loopback, 2, true);
        for n in [&web, &other, &routed] {
            driver::setup_network(k, n).unwrap();
        }
        let a_ep = endpoint(&web, 1, 2);
        let c_ep = endpoint(&routed, 2, 2);
        let forwards = [
            tcp(None, 8080, IpAddr::V4(a_ep.ip_address.unwrap())),
            tcp(None, 8080, IpAddr::V6(a_ep.ip_address6.unwrap())),
            tcp(Some("198.51.100.2"), 8081, IpAddr::V4(a_ep.ip_address.unwrap())),
            PortForward {
                protocol: Protocol::Udp,
                ..tcp(None, 8053, IpAddr::V4(a_ep.ip_address.unwrap()))
            },
            tcp(None, 8090, IpAddr::V4(c_ep.ip_address.unwrap())),
            tcp(None, 8090, IpAddr::V6(c_ep.ip_address6.unwrap())),
        ];
        let a = start(k, &web, a_ep, NetworkDriver::Vnet, &forwards);
        let b = start(k, &web, endpoint(&web, 1, 3), NetworkDriver::Vnet, &forwards);
        let d = start(k, &other, endpoint(&other, 3, 2), NetworkDriver::Ipnet, &forwards);
        let c = start(k, &routed, c_ep, NetworkDriver::Ipnet, &forwards);
        assert_eq!(port_map_elements(&nft).len(), 2 * forwards.len());
        assert_eq!(rule_count(&nft), rules_at_start, "ports are elements, not rules");

        let t = Protocol::Tcp;
        // From outside, on every host address: the real client address.
        assert_eq!(reach(Some(&outside), "198.51.100.2:8080", t), ip("198.51.100.1"));
        assert_eq!(reach(Some(&outside), "203.0.113.1:8080", t), ip("198.51.100.1"));
        assert_eq!(reach(Some(&outside), "[2001:db8::2]:8080", t), ip("2001:db8::1"));
        assert_eq!(
            reach(Some(&outside), "198.51.100.2:8053", Protocol::Udp),
            ip("198.51.100.1")
        );
        // From the host itself: its own addresses, 127.0.0.1 and [::1].
        assert_eq!(reach(None, "198.51.100.2:8080", t), ip("198.51.100.2"));
        assert_eq!(reach(None, "[2001:db8::2]:8080", t), ip("2001:db8::2"));
        assert_eq!(reach(None, "127.0.0.1:8080", t), ip("10.1.0.1"));
        assert_eq!(reach(None, "127.0.0.1:8053", Protocol::Udp), ip("10.1.0.1"));
        assert_eq!(reach(None, "[::1]:8080", t), ip("fd00:1::1"));
        // Hairpin on a network with icc off: the container itself and its
        // neighbour, masqueraded to the gateway so the replies come back
        // through the host.
        assert_eq!(reach(Some(&b.ns), "198.51.100.2:8080", t), ip("10.1.0.1"));
        assert_eq!(reach(Some(&a.ns), "198.51.100.2:8080", t), ip("10.1.0.1"));
        assert_eq!(reach(Some(&b.ns), "[2001:db8::2]:8080", t), ip("fd00:1::1"));
        assert_eq!(reach(Some(&b.ns), "10.1.0.1:8080", t), ip("10.1.0.1"));
        // icc off still holds for the containers' own addresses.
        assert!(unreachable(Some(&b.ns), "10.1.0.2:80", t));
        // From another network: its own address.
        assert_eq!(reach(Some(&d.ns), "198.51.100.2:8080", t), ip("10.3.0.2"));
        assert_eq!(reach(Some(&d.ns), "[2001:db8::2]:8080", t), ip("fd00:3::2"));
        // A container of a loopback (routed) network, from everywhere.
        assert_eq!(reach(Some(&outside), "198.51.100.2:8090", t), ip("198.51.100.1"));
        assert_eq!(reach(Some(&outside), "[2001:db8::2]:8090", t), ip("2001:db8::1"));
        assert!(reach(None, "127.0.0.1:8090", t).is_ipv4());
        assert!(reach(None, "[::1]:8090", t).is_ipv6());
        assert!(reach(Some(&c.ns), "198.51.100.2:8090", t).is_ipv4());
        assert_eq!(reach(Some(&a.ns), "198.51.100.2:8090", t), ip("10.1.0.2"));

        // Bound to one host address: answers there, not on another one
        // (where the all-addresses port 8080 answers: positive control).
        assert_eq!(reach(Some(&outside), "198.51.100.2:8081", t), ip("198.51.100.1"));
        assert_eq!(reach(Some(&outside), "203.0.113.1:8080", t), ip("198.51.100.1"));
        assert!(unreachable(Some(&outside), "203.0.113.1:8081", t));
        // A port never published does not answer, on any path.
        assert!(unreachable(Some(&outside), "198.51.100.2:8099", t));
        assert!(unreachable(None, "127.0.0.1:8099", t));
        // route_localnet (and the ::1 route and redirect) do not open the
        // host's loopback services to containers. Container A is made to
        // send to 127.0.0.1 and ::1 through its gateway (its own kernel
        // would keep them local); the host's sockets there see nothing,
        // and see A's datagrams once the guard rule is gone (positive
        // control), and nothing again once the ruleset is restored.
        nsenter(&a.ns.0, "ip route del local 127.0.0.0/8 dev lo table local");
        nsenter(&a.ns.0, "ip route del local 127.0.0.1 dev lo table local");
        nsenter(&a.ns.0, "ip route add 127.0.0.0/8 via 10.1.0.1 dev cell1");
        nsenter(&a.ns.0, "ip -6 route del local ::1 dev lo table local");
        nsenter(&a.ns.0, "ip -6 route add ::1/128 via fd00:1::1 dev cell1");
        for (guard_index, sink_addr) in [(0, "127.0.0.1:9000"), (1, "[::1]:9000")] {
            let sink = UdpSocket::bind(sink_addr).unwrap();
            assert!(!datagram_arrives(&a.ns, &sink), "{sink_addr} with the guard");
            let guard = rule_handles(&nft, ruleset::CHAIN_INPUT_LOCALNET);
            assert_eq!(guard.len(), 2);
            nft.apply(&serde_json::json!({"nftables": [{"delete": {"rule": {
                "family": "inet", "table": ruleset::TABLE, "chain": ruleset::CHAIN_INPUT_LOCALNET,
                "handle": guard[guard_index]}}}]}))
                .unwrap();
            assert!(datagram_arrives(&a.ns, &sink), "{sink_addr} without the guard");
            // celld's start puts it back (flush and re-add, elements kept).
            nft.apply(&ruleset::base_ruleset()).unwrap();
            assert!(
                !datagram_arrives(&a.ns, &sink),
                "{sink_addr} with the guard again"
            );
        }
        assert_eq!(port_map_elements(&nft).len(), 2 * forwards.len());
        assert_eq!(reach(Some(&outside), "198.51.100.2:8080", t), ip("198.51.100.1"));
        assert_eq!(reach(None, "[::1]:8080", t), ip("fd00:1::1"));

        // Live removal and addition of one forward, alone.
        let udp = [forwards[3]];
        ports::unpublish(&nft, &udp).unwrap();
        ports::unpublish(&nft, &udp).unwrap(); // already gone: fine
        assert!(unreachable(Some(&outside), "198.51.100.2:8053", Protocol::Udp));
        ports::publish(&nft, &udp).unwrap();
        assert_eq!(
            reach(Some(&outside), "198.51.100.2:8053", Protocol::Udp),
            ip("198.51.100.1")
        );
        // A host port mapped elsewhere cannot be taken over silently.
        let taken = PortForward {
            container_ip: ip("10.1.0.3"),
            ..forwards[0]
        };
        assert!(ports::publish(&nft, &[taken]).is_err());
        assert_eq!(reach(Some(&outside), "198.51.100.2:8080", t), ip("198.51.100.1"));

        // Detach takes the endpoint's forwards with it: no element left.
        let cs = [&a, &b, &c, &d];
        for ctr in cs {
            let net = [&web, &other, &routed]
                .into_iter()
                .find(|n| n.id == ctr.ep.network_id)
                .unwrap();
            driver::detach_with_ports(k, None, net, &ctr.ep, &ports::forwards_of(&ctr.ep, &forwards))
                .unwrap();
        }
        assert_eq!(port_map_elements(&nft), Vec::<Value>::new());
        assert!(unreachable(Some(&outside), "198.51.100.2:8080", t));
        assert_eq!(rule_count(&nft), rules_at_start);
    });
}
