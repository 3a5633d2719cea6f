//! Kernel tests of `cell-net`: netns, rtnetlink verbs with real traffic,
//! and cell's nftables tables applied through libnftables.
//!
//! Each test skips with a message when not root, and runs its body on a
//! thread that first moves into a fresh network namespace, so the machine's
//! own namespace is never touched. Named namespaces are bind mounts on
//! temporary files, removed by a guard.

use cell_core::model::{Endpoint, Network, NetworkType};
use cell_net::ruleset::{self, Element};
use cell_net::{Links, NetlinkLinks, Nft, create_netns, delete_netns, in_netns};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

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
        let path = std::env::temp_dir().join(format!("cell-net-test-{}-{tag}", std::process::id()));
        let _ = delete_netns(&path);
        create_netns(&path).expect("create netns");
        Self(path)
    }

    fn fd(&self) -> File {
        File::open(&self.0).unwrap()
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        delete_netns(&self.0).unwrap();
    }
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

/// Connects from inside `ns` to `addr`, sends a byte and reads it back
/// (the listener echoes); true if that worked within the timeout.
fn tcp_works(ns: &NamedNetns, listener: &TcpListener, timeout: Duration) -> bool {
    let addr = listener.local_addr().unwrap();
    std::thread::scope(|s| {
        let client = s.spawn(|| {
            in_netns(&ns.0, || {
                let deadline = std::time::Instant::now() + timeout;
                loop {
                    match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                        Ok(mut stream) => {
                            stream.write_all(b"x").unwrap();
                            let mut b = [0u8];
                            return stream.read_exact(&mut b).is_ok();
                        }
                        Err(_) if std::time::Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(100))
                        }
                        Err(_) => return false,
                    }
                }
            })
            .unwrap()
        });
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + timeout + Duration::from_secs(1);
        while !client.is_finished() && std::time::Instant::now() < deadline {
            if let Ok((mut stream, _)) = listener.accept() {
                stream.set_nonblocking(false).unwrap();
                let mut b = [0u8];
                if stream.read_exact(&mut b).is_ok() {
                    stream.write_all(&b).unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        client.join().unwrap()
    })
}

#[test]
fn netns_create_enter_delete() {
    in_fresh_netns("netns_create_enter_delete", || {
        let ns = NamedNetns::new("basic");
        let links = NetlinkLinks::in_netns(&ns.0).unwrap();
        let all = links.list_links().unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].name, "lo");
        assert!(all[0].up, "lo must be up in a new netns");
        // The calling thread stayed where it was: the bridge goes here.
        NetlinkLinks::new().unwrap().create_bridge("here0").unwrap();
        assert_eq!(links.link_index("here0").unwrap(), None);
        let path = ns.0.clone();
        drop(ns);
        assert!(!path.exists());
        delete_netns(&path).unwrap();
        assert!(in_netns(&path, || ()).is_err());
    });
}

#[test]
fn veth_bridge_addresses_routes_and_tcp() {
    in_fresh_netns("veth_bridge_addresses_routes_and_tcp", || {
        let host = NetlinkLinks::new().unwrap();
        host.set_up("lo").unwrap();
        let ns = NamedNetns::new("tcp");
        host.create_bridge("cbr0").unwrap();
        host.create_veth_pair("vh0", "eth0", Some(ns.fd().as_raw_fd()))
            .unwrap();
        host.set_master("vh0", "cbr0").unwrap();
        host.set_up("cbr0").unwrap();
        host.set_up("vh0").unwrap();
        host.add_address("cbr0", net("10.88.0.1/24")).unwrap();
        host.add_address("cbr0", net("10.88.0.1/24")).unwrap(); // exists: ok
        host.add_address("cbr0", net("fd88::1/64")).unwrap();

        let inner = NetlinkLinks::in_netns(&ns.0).unwrap();
        assert!(
            host.link_index("eth0").unwrap().is_none(),
            "peer must be in the netns"
        );
        inner.set_up("eth0").unwrap();
        inner.add_address("eth0", net("10.88.0.2/24")).unwrap();
        inner.add_address("eth0", net("fd88::2/64")).unwrap();
        let gw4: IpAddr = "10.88.0.1".parse().unwrap();
        let gw6: IpAddr = "fd88::1".parse().unwrap();
        inner.add_route(net("0.0.0.0/0"), "eth0", Some(gw4)).unwrap();
        inner.add_route(net("0.0.0.0/0"), "eth0", Some(gw4)).unwrap();
        inner.add_route(net("::/0"), "eth0", Some(gw6)).unwrap();

        let mut addrs = inner.list_addresses("eth0").unwrap();
        addrs.retain(|a| !matches!(a.addr(), IpAddr::V6(v6) if v6.segments()[0] == 0xfe80));
        assert_eq!(addrs, vec![net("10.88.0.2/24"), net("fd88::2/64")]);

        let all = host.list_links().unwrap();
        let bridge = all.iter().find(|l| l.name == "cbr0").unwrap();
        let port = all.iter().find(|l| l.name == "vh0").unwrap();
        assert_eq!(bridge.kind.as_deref(), Some("bridge"));
        assert_eq!(port.kind.as_deref(), Some("veth"));
        assert_eq!(port.master, Some(bridge.index));
        assert!(port.up && bridge.up);

        // A listener outside the bridge's subnet proves the default route.
        host.create_veth_pair("up0", "up1", None).unwrap();
        host.set_up("up0").unwrap();
        host.set_up("up1").unwrap();
        host.add_address("up0", net("198.51.100.1/24")).unwrap();
        host.add_address("up0", net("2001:db8::1/64")).unwrap();
        for listen in ["10.88.0.1:0", "[fd88::1]:0", "198.51.100.1:0", "[2001:db8::1]:0"] {
            let listener = TcpListener::bind(listen.parse::<SocketAddr>().unwrap()).unwrap();
            assert!(
                tcp_works(&ns, &listener, Duration::from_secs(5)),
                "tcp to {listen}"
            );
        }

        // A host route without a gateway, idempotent both ways.
        host.add_route(net("10.99.0.0/24"), "cbr0", None).unwrap();
        host.add_route(net("10.99.0.0/24"), "cbr0", None).unwrap();
        host.del_route(net("10.99.0.0/24"), "cbr0").unwrap();
        host.del_route(net("10.99.0.0/24"), "cbr0").unwrap();
        host.del_address("cbr0", net("fd88::1/64")).unwrap();
        host.del_address("cbr0", net("fd88::1/64")).unwrap();

        host.set_nomaster("vh0").unwrap();
        let port = host
            .list_links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == "vh0")
            .unwrap();
        assert_eq!(port.master, None);
    });
}

#[test]
fn link_errors_and_renames() {
    in_fresh_netns("link_errors_and_renames", || {
        let host = NetlinkLinks::new().unwrap();
        host.create_bridge("cbr0").unwrap();
        let err = host.create_bridge("cbr0").unwrap_err();
        assert!(err.is_exists());
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("cbr0") && chain.contains("exists"), "{chain}");
        let err = host.create_veth_pair("cbr0", "x1", None).unwrap_err();
        assert!(err.is_exists(), "{err}");

        host.delete_link("absent0").unwrap();
        let err = host.set_up("absent0").unwrap_err();
        assert!(err.is_not_found() && err.to_string().contains("absent0"), "{err}");
        assert!(host.create_bridge("sixteen-chars-xx").is_err());

        host.create_veth_pair("va", "vb", None).unwrap();
        host.rename("va", "va2").unwrap();
        assert!(host.link_index("va").unwrap().is_none());
        let mac = "02:11:22:33:44:55".parse().unwrap();
        host.set_mac("va2", mac).unwrap();
        assert_eq!(host.link_mac("va2").unwrap(), mac);
        // Deleting one end takes the other with it.
        host.delete_link("va2").unwrap();
        assert!(host.link_index("vb").unwrap().is_none());
        host.delete_link("vb").unwrap();
    });
}

#[test]
fn macvlan_child_of_veth_into_netns() {
    in_fresh_netns("macvlan_child_of_veth_into_netns", || {
        let host = NetlinkLinks::new().unwrap();
        let ns = NamedNetns::new("mv");
        host.create_veth_pair("up0", "up1", None).unwrap();
        host.set_up("up0").unwrap();
        host.create_macvlan("mv0", "up0", Some(ns.fd().as_raw_fd()))
            .unwrap();
        let inner = NetlinkLinks::in_netns(&ns.0).unwrap();
        let mv = inner
            .list_links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == "mv0")
            .unwrap();
        assert_eq!(mv.kind.as_deref(), Some("macvlan"));
        assert!(
            host.create_macvlan("mv1", "absent0", None)
                .unwrap_err()
                .is_not_found()
        );
        // A child carrying its parent's name inside (as custom networks
        // do) leaves the host's verbs on the parent: the child's index is
        // not taken for the parent's.
        let ns2 = NamedNetns::new("mv2");
        host.create_macvlan("up0", "up0", Some(ns2.fd().as_raw_fd()))
            .unwrap();
        host.add_address("up0", net("192.0.2.1/24")).unwrap();
        assert_eq!(host.list_addresses("up0").unwrap(), vec![net("192.0.2.1/24")]);
        let inner2 = NetlinkLinks::in_netns(&ns2.0).unwrap();
        assert!(inner2.list_addresses("up0").unwrap().is_empty());
    });
}

fn test_network() -> Network {
    Network {
        id: "0123456789ab".into(),
        name: "web".into(),
        net_type: NetworkType::Bridge,
        interface: "cbr0".into(),
        subnet: Some("10.77.0.0/24".parse().unwrap()),
        subnet6: Some("fd77::/64".parse().unwrap()),
        gateway: Some("10.77.0.1".parse().unwrap()),
        gateway6: Some("fd77::1".parse().unwrap()),
        nat: Some("up0".into()),
        icc: true,
        internal: false,
        antispoof: true,
    }
}

fn test_endpoint(n: u8) -> Endpoint {
    Endpoint {
        id: format!("aaaaaaaaaaa{n}"),
        network_id: "0123456789ab".into(),
        container_id: format!("bbbbbbbbbbb{n}"),
        epair: Some(format!("vh{n}")),
        ip_address: Some(format!("10.77.0.{}", n + 1).parse().unwrap()),
        ip_address6: Some(format!("fd77::{}", n + 1).parse().unwrap()),
        mac: Some(format!("02:00:00:00:00:0{n}")),
    }
}

/// The elements of every set of a listed table, by set name.
fn set_elements(listing: &Value) -> Vec<(String, Vec<Value>)> {
    listing["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("set"))
        .map(|s| {
            let elems = s
                .get("elem")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            (s["name"].as_str().unwrap().to_string(), elems)
        })
        .collect()
}

fn element_count(nft: &Nft) -> usize {
    ["inet", "bridge"]
        .iter()
        .map(|f| {
            let listing = nft.list_table(f, ruleset::TABLE).unwrap();
            set_elements(&listing).iter().map(|(_, e)| e.len()).sum::<usize>()
        })
        .sum()
}

#[test]
fn nft_base_ruleset_and_elements() {
    in_fresh_netns("nft_base_ruleset_and_elements", || {
        let nft = Nft::new().unwrap();
        let foreign = json!({"nftables": [
            {"add": {"table": {"family": "inet", "name": "other"}}},
            {"add": {"chain": {"family": "inet", "table": "other", "name": "input",
                "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}},
            {"add": {"rule": {"family": "inet", "table": "other", "chain": "input",
                "expr": [{"counter": null}]}}},
        ]});
        nft.apply(&foreign).unwrap();
        let foreign_before = nft.list_table("inet", "other").unwrap();

        nft.apply(&ruleset::base_ruleset()).unwrap();
        nft.apply(&ruleset::base_ruleset()).unwrap();
        let inet = nft.list_table("inet", "cell").unwrap();
        let rules = |v: &Value| {
            v["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o.get("rule").is_some())
                .count()
        };
        let inet_rules = rules(&inet);
        let sets: Vec<String> = set_elements(&inet).into_iter().map(|(n, _)| n).collect();
        assert!(
            sets.contains(&"masq4".to_string()) && sets.contains(&"same_net6".to_string()),
            "{sets:?}"
        );

        let network = test_network();
        let mut elems: Vec<Element> = ruleset::network_elements(&network);
        for n in [1, 2] {
            let ep = test_endpoint(n);
            elems.extend(ruleset::endpoint_elements(&network, &ep, &format!("vh{n}"), None).unwrap());
        }
        nft.apply(&ruleset::batch(ruleset::add_elements(&elems))).unwrap();
        // Adding again is a no-op, not an error.
        nft.apply(&ruleset::batch(ruleset::add_elements(&elems))).unwrap();
        assert_eq!(element_count(&nft), elems.len());
        let bridge = nft.list_table("bridge", "cell").unwrap();
        let allowed4 = set_elements(&bridge)
            .into_iter()
            .find(|(n, _)| n == "allowed4")
            .unwrap()
            .1;
        assert_eq!(allowed4.len(), 2, "{allowed4:?}");

        // The base ruleset again keeps the elements and the rule count.
        nft.apply(&ruleset::base_ruleset()).unwrap();
        assert_eq!(element_count(&nft), elems.len());
        assert_eq!(rules(&nft.list_table("inet", "cell").unwrap()), inet_rules);

        nft.apply(&ruleset::batch(ruleset::delete_elements(&elems)))
            .unwrap();
        assert_eq!(element_count(&nft), 0);
        // Teardown twice is fine.
        nft.apply(&ruleset::batch(ruleset::delete_elements(&elems)))
            .unwrap();
        assert_eq!(element_count(&nft), 0);

        assert_eq!(nft.list_table("inet", "other").unwrap(), foreign_before);
        nft.apply(&ruleset::delete_tables()).unwrap();
        nft.apply(&ruleset::delete_tables()).unwrap();
        assert!(nft.list_table("inet", "cell").is_err());
        assert_eq!(nft.list_table("inet", "other").unwrap(), foreign_before);
    });
}

#[test]
fn nft_errors_carry_nft_text_and_apply_nothing() {
    in_fresh_netns("nft_errors_carry_nft_text_and_apply_nothing", || {
        let nft = Nft::new().unwrap();
        let bad = json!({"nftables": [
            {"add": {"table": {"family": "inet", "name": "cell"}}},
            {"add": {"element": {"family": "inet", "table": "cell", "name": "nosuchset", "elem": ["1.2.3.4"]}}},
        ]});
        let err = nft.apply(&bad).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("inet cell") && text.contains("No such file"),
            "{text}"
        );
        // Atomic: the table of the failed batch was not created.
        assert!(nft.list_table("inet", "cell").is_err());
    });
}

#[test]
fn nft_context_stays_in_its_netns() {
    in_fresh_netns("nft_context_stays_in_its_netns", || {
        let nft = Nft::new().unwrap();
        let table = json!({"nftables": [{"add": {"table": {"family": "inet", "name": "probe"}}}]});
        // Use the context from a thread in another fresh namespace.
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: changes only this thread's namespace.
                assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
                nft.apply(&table).unwrap();
                let here = Nft::new().unwrap();
                assert!(
                    here.list_table("inet", "probe").is_err(),
                    "went to the thread's netns"
                );
            })
            .join()
            .unwrap()
        });
        assert!(Nft::new().unwrap().list_table("inet", "probe").is_ok());
    });
}

#[test]
fn bridge_antispoof_and_icc_traffic() {
    in_fresh_netns("bridge_antispoof_and_icc_traffic", || {
        let host = NetlinkLinks::new().unwrap();
        host.set_up("lo").unwrap();
        let nft = Nft::new().unwrap();
        nft.apply(&ruleset::base_ruleset()).unwrap();
        host.create_bridge("cbr0").unwrap();
        host.set_up("cbr0").unwrap();
        host.add_address("cbr0", net("10.77.0.1/24")).unwrap();
        let mut network = test_network();
        let spaces: Vec<NamedNetns> = [1u8, 2]
            .iter()
            .map(|n| NamedNetns::new(&format!("as{n}")))
            .collect();
        for (i, ns) in spaces.iter().enumerate() {
            let n = i + 1;
            let port = format!("vh{n}");
            host.create_veth_pair(&port, "eth0", Some(ns.fd().as_raw_fd()))
                .unwrap();
            host.set_master(&port, "cbr0").unwrap();
            host.set_up(&port).unwrap();
            let inner = NetlinkLinks::in_netns(&ns.0).unwrap();
            inner.set_up("eth0").unwrap();
            inner
                .add_address("eth0", net(&format!("10.77.0.{}/24", n + 1)))
                .unwrap();
        }
        // Only container 1 is anti-spoofed, with its real MAC.
        let inner1 = NetlinkLinks::in_netns(&spaces[0].0).unwrap();
        let mac1 = inner1.link_mac("eth0").unwrap();
        let ep1 = test_endpoint(1);
        let elems = ruleset::endpoint_elements(&network, &ep1, "vh1", Some(mac1)).unwrap();
        nft.apply(&ruleset::batch(ruleset::add_elements(&elems))).unwrap();

        let gw = TcpListener::bind("10.77.0.1:0").unwrap();
        assert!(
            tcp_works(&spaces[0], &gw, Duration::from_secs(5)),
            "allowed source"
        );
        assert!(
            tcp_works(&spaces[1], &gw, Duration::from_secs(5)),
            "unchecked port"
        );

        // Container 1 takes an address that is not its own.
        inner1.del_address("eth0", net("10.77.0.2/24")).unwrap();
        inner1.add_address("eth0", net("10.77.0.9/24")).unwrap();
        assert!(
            !tcp_works(&spaces[0], &gw, Duration::from_secs(2)),
            "spoofed source must fail"
        );
        // Back to its own address: works again.
        inner1.del_address("eth0", net("10.77.0.9/24")).unwrap();
        inner1.add_address("eth0", net("10.77.0.2/24")).unwrap();
        assert!(
            tcp_works(&spaces[0], &gw, Duration::from_secs(5)),
            "own source again"
        );

        // icc off: container 2 cannot reach container 1, but both still
        // reach the gateway.
        let c1 = in_netns(&spaces[0].0, || TcpListener::bind("10.77.0.2:0").unwrap()).unwrap();
        assert!(tcp_works(&spaces[1], &c1, Duration::from_secs(5)), "icc on");
        network.icc = false;
        network.antispoof = false;
        let mut icc_off = Vec::new();
        for n in [1u8, 2] {
            icc_off.extend(
                ruleset::endpoint_elements(&network, &test_endpoint(n), &format!("vh{n}"), None).unwrap(),
            );
        }
        nft.apply(&ruleset::batch(ruleset::add_elements(&icc_off)))
            .unwrap();
        assert!(
            !tcp_works(&spaces[1], &c1, Duration::from_secs(2)),
            "icc off must block"
        );
        assert!(
            tcp_works(&spaces[1], &gw, Duration::from_secs(5)),
            "gateway with icc off"
        );
        nft.apply(&ruleset::batch(ruleset::delete_elements(&icc_off)))
            .unwrap();
        assert!(tcp_works(&spaces[1], &c1, Duration::from_secs(5)), "icc back on");
    });
}

/// Enables IPv4 forwarding on one link of the calling thread's namespace.
/// Per-link (not the global `ip_forward`) on purpose: the file of a link
/// that exists only in the test's namespace cannot reach the host's.
fn enable_forwarding(link: &str) {
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{link}/forwarding"), "1").unwrap();
}

#[test]
fn routed_port_masquerade_and_antispoof() {
    in_fresh_netns("routed_port_masquerade_and_antispoof", || {
        let host = NetlinkLinks::new().unwrap();
        let nft = Nft::new().unwrap();
        nft.apply(&ruleset::base_ruleset()).unwrap();
        // "The outside world": an upstream namespace that knows no route
        // back to the container's subnet, so only masquerade can work.
        let upstream = NamedNetns::new("up");
        host.create_veth_pair("up0", "up1", Some(upstream.fd().as_raw_fd()))
            .unwrap();
        host.set_up("up0").unwrap();
        host.add_address("up0", net("198.51.100.1/24")).unwrap();
        let up = NetlinkLinks::in_netns(&upstream.0).unwrap();
        up.set_up("up1").unwrap();
        up.add_address("up1", net("198.51.100.2/24")).unwrap();

        // A loopback (routed) network: a /32 inside, a host route to it.
        let container = NamedNetns::new("routed");
        host.create_veth_pair("vh1", "eth0", Some(container.fd().as_raw_fd()))
            .unwrap();
        host.set_up("vh1").unwrap();
        host.add_address("vh1", net("10.66.0.1/32")).unwrap();
        host.add_route(net("10.66.0.2/32"), "vh1", None).unwrap();
        let inner = NetlinkLinks::in_netns(&container.0).unwrap();
        inner.set_up("eth0").unwrap();
        inner.add_address("eth0", net("10.66.0.2/32")).unwrap();
        inner.add_route(net("10.66.0.1/32"), "eth0", None).unwrap();
        let gw: IpAddr = "10.66.0.1".parse().unwrap();
        inner.add_route(net("0.0.0.0/0"), "eth0", Some(gw)).unwrap();
        enable_forwarding("vh1");
        enable_forwarding("up0");

        let mut network = test_network();
        network.net_type = NetworkType::Loopback;
        network.subnet = Some("10.66.0.0/24".parse().unwrap());
        network.subnet6 = None;
        let mut ep = test_endpoint(1);
        ep.ip_address = Some("10.66.0.2".parse().unwrap());
        ep.ip_address6 = None;
        let mut elems = ruleset::network_elements(&network);
        elems.extend(ruleset::endpoint_elements(&network, &ep, "vh1", None).unwrap());
        nft.apply(&ruleset::batch(ruleset::add_elements(&elems))).unwrap();

        let outside = in_netns(&upstream.0, || TcpListener::bind("198.51.100.2:0").unwrap()).unwrap();
        assert!(
            tcp_works(&container, &outside, Duration::from_secs(5)),
            "masqueraded"
        );

        // A source address the port was not given is dropped on entry.
        inner.del_address("eth0", net("10.66.0.2/32")).unwrap();
        inner.add_address("eth0", net("10.66.0.9/32")).unwrap();
        // The host would route answers back: only anti-spoofing can fail it.
        host.add_route(net("10.66.0.9/32"), "vh1", None).unwrap();
        // Removing the last address flushed the device's routes.
        inner.add_route(net("10.66.0.1/32"), "eth0", None).unwrap();
        inner.add_route(net("0.0.0.0/0"), "eth0", Some(gw)).unwrap();
        assert!(
            !tcp_works(&container, &outside, Duration::from_secs(2)),
            "spoofed"
        );

        // Without the NAT element the upstream cannot answer.
        inner.del_address("eth0", net("10.66.0.9/32")).unwrap();
        inner.add_address("eth0", net("10.66.0.2/32")).unwrap();
        // Removing the last address flushed the device's routes.
        inner.add_route(net("10.66.0.1/32"), "eth0", None).unwrap();
        inner.add_route(net("0.0.0.0/0"), "eth0", Some(gw)).unwrap();
        assert!(
            tcp_works(&container, &outside, Duration::from_secs(5)),
            "own source"
        );
        let masq: Vec<Element> = elems
            .iter()
            .filter(|e| e.set == ruleset::SET_MASQ4)
            .cloned()
            .collect();
        assert_eq!(masq.len(), 1);
        nft.apply(&ruleset::batch(ruleset::delete_elements(&masq)))
            .unwrap();
        assert!(!tcp_works(&container, &outside, Duration::from_secs(2)), "no NAT");
    });
}

/// How the benchmark opens a container's kernel.
#[derive(Clone, Copy, Debug)]
enum Opening {
    /// As `celld` did before `ContainerNet`: the file, a netlink socket
    /// made on a thread in the namespace, a thread per sysctl write.
    ThreeOpens,
    /// [`cell_net::ContainerNet`].
    Once,
}

/// Microseconds of one attach, opening the container's kernel included,
/// of one container on a v4-only bridge network (so the container side
/// gets a sysctl write too).
fn attach_us(
    k: cell_net::HostKernel<'_>,
    network: &Network,
    container: &NamedNetns,
    ep: &Endpoint,
    opening: Opening,
) -> u128 {
    use cell_core::model::NetworkDriver;
    use cell_net::driver;
    let started = std::time::Instant::now();
    match opening {
        Opening::ThreeOpens => {
            let ns = container.fd();
            let links = NetlinkLinks::in_netns(&container.0).unwrap();
            let sysctl = cell_net::NetnsSysctl::new(&container.0);
            let c = cell_net::ContainerKernel {
                links: &links,
                sysctl: &sysctl,
                netns_fd: ns.as_raw_fd(),
            };
            driver::attach(k, c, network, ep, NetworkDriver::Vnet).unwrap();
        }
        Opening::Once => {
            let inside = cell_net::ContainerNet::open(&container.0).unwrap();
            driver::attach(k, inside.kernel(), network, ep, NetworkDriver::Vnet).unwrap();
        }
    }
    started.elapsed().as_micros()
}

fn median(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Not a timed test: prints what an attach costs each way (run with
/// `--nocapture`), and checks that hundreds of cycles leave nothing.
#[test]
fn attach_cost() {
    in_fresh_netns("attach_cost", || {
        let nft = Nft::new().unwrap();
        nft.apply(&ruleset::base_ruleset()).unwrap();
        let mut network = test_network();
        network.subnet6 = None;
        network.gateway6 = None;
        let host = NetlinkLinks::new().unwrap();
        let k = cell_net::HostKernel {
            links: &host,
            firewall: &nft,
            sysctl: &cell_net::ProcSysctl,
        };
        cell_net::driver::setup_network(k, &network).unwrap();
        let containers: Vec<NamedNetns> = (1..=8).map(|i| NamedNetns::new(&format!("cost{i}"))).collect();
        // Each round attaches eight endpoints, alternating the two ways,
        // then detaches them all: a veth's deletion leaves the kernel busy
        // for a while, which would slow whichever attach came right after.
        let rounds = 10;
        let mut times = [Vec::new(), Vec::new()];
        let mut detach_us = Vec::new();
        let ways = [Opening::ThreeOpens, Opening::Once];
        for round in 0..rounds {
            let endpoints: Vec<Endpoint> = (1..=8).map(test_endpoint).collect();
            for (i, (ep, container)) in endpoints.iter().zip(&containers).enumerate() {
                let way = (i + round) % 2;
                times[way].push(attach_us(k, &network, container, ep, ways[way]));
            }
            for ep in &endpoints {
                let started = std::time::Instant::now();
                cell_net::driver::detach(k, None, &network, ep).unwrap();
                detach_us.push(started.elapsed().as_micros());
            }
        }
        for (way, times) in ways.iter().zip(times) {
            eprintln!(
                "{way:?}: attach median {} us ({} attaches)",
                median(times),
                rounds * 4
            );
        }
        eprintln!("detach median {} us", median(detach_us));
        // Nothing is left of the attaches but the bridge.
        let left: Vec<_> = host
            .list_links()
            .unwrap()
            .into_iter()
            .filter(|l| l.name.starts_with("cv"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(host.link_index("cbr0").unwrap().is_some());
    });
}

#[test]
fn routes_and_aliases_are_listed() {
    in_fresh_netns("routes_and_aliases_are_listed", || {
        use cell_net::{RouteInfo, RouteKind};
        let host = NetlinkLinks::new().unwrap();
        host.create_bridge("cbr0").unwrap();
        host.set_alias("cbr0", "cell:0123456789ab").unwrap();
        host.set_up("cbr0").unwrap();
        host.add_address("cbr0", net("10.77.0.1/24")).unwrap();
        host.add_unreachable_route(net("10.88.0.0/24")).unwrap();
        let gw: IpAddr = "10.77.0.254".parse().unwrap();
        host.add_route(net("0.0.0.0/0"), "cbr0", Some(gw)).unwrap();
        host.create_bridge("user0").unwrap();

        let links = host.list_links().unwrap();
        let alias = |name: &str| links.iter().find(|l| l.name == name).unwrap().alias.clone();
        assert_eq!(alias("cbr0").as_deref(), Some("cell:0123456789ab"));
        assert_eq!(alias("user0"), None, "a link cell did not mark");

        let routes = host.list_routes().unwrap();
        assert!(routes.contains(&RouteInfo {
            dest: net("10.88.0.0/24"),
            dev: None,
            kind: RouteKind::Unreachable,
            gateway: None,
        }));
        assert!(routes.contains(&RouteInfo {
            dest: net("0.0.0.0/0"),
            dev: Some("cbr0".into()),
            kind: RouteKind::Unicast,
            gateway: Some(gw),
        }));
        // The kernel's own prefix route of the address, main table only
        // (no local-table routes such as 10.77.0.1/32).
        assert!(
            routes
                .iter()
                .any(|r| r.dest == net("10.77.0.0/24") && r.dev.as_deref() == Some("cbr0"))
        );
        assert!(
            !routes.iter().any(|r| r.dest == net("10.77.0.1/32")),
            "{routes:?}"
        );

        // An empty alias removes the mark.
        host.set_alias("cbr0", "").unwrap();
        let links = host.list_links().unwrap();
        assert_eq!(links.iter().find(|l| l.name == "cbr0").unwrap().alias, None);
    });
}

#[test]
fn a_link_replaced_behind_the_cache_is_found_again() {
    in_fresh_netns("a_link_replaced_behind_the_cache_is_found_again", || {
        let cell = NetlinkLinks::new().unwrap();
        let someone_else = NetlinkLinks::new().unwrap();
        cell.create_bridge("cbr0").unwrap();
        cell.set_up("cbr0").unwrap();
        let first = cell.link_index("cbr0").unwrap().unwrap();
        // Deleted and made again by another socket: the cached index is
        // stale, the name is the same.
        someone_else.delete_link("cbr0").unwrap();
        someone_else.create_bridge("cbr0").unwrap();
        let second = someone_else.link_index("cbr0").unwrap().unwrap();
        assert_ne!(first, second);
        cell.add_address("cbr0", net("10.77.0.1/24")).unwrap();
        assert_eq!(
            someone_else.list_addresses("cbr0").unwrap(),
            vec![net("10.77.0.1/24")]
        );
        // Deleted behind the cache and not made again: a verb names it.
        someone_else.delete_link("cbr0").unwrap();
        let err = cell.set_up("cbr0").unwrap_err();
        assert!(err.is_not_found() && err.to_string().contains("cbr0"), "{err}");
        cell.delete_link("cbr0").unwrap();
    });
}

#[test]
fn container_net_opens_once_and_writes_sysctls_inside() {
    in_fresh_netns("container_net_opens_once_and_writes_sysctls_inside", || {
        use cell_net::{ContainerNet, Sysctl};
        let container = NamedNetns::new("cnet");
        let host = NetlinkLinks::new().unwrap();
        let inside = ContainerNet::open(&container.0).unwrap();
        let k = inside.kernel();
        host.create_veth_pair("vh0", "eth0", Some(k.netns_fd)).unwrap();
        // The sysctl of eth0 exists only inside: writing it from the host's
        // namespace would fail.
        k.sysctl.set("net/ipv6/conf/eth0/disable_ipv6", "1").unwrap();
        assert!(
            cell_net::ProcSysctl
                .set("net/ipv6/conf/eth0/disable_ipv6", "1")
                .is_err()
        );
        let read = in_netns(&container.0, || {
            std::fs::read_to_string("/proc/sys/net/ipv6/conf/eth0/disable_ipv6").unwrap()
        })
        .unwrap();
        assert_eq!(read.trim(), "1");
        k.links.set_up("eth0").unwrap();
        assert!(
            k.links
                .list_links()
                .unwrap()
                .iter()
                .any(|l| l.name == "eth0" && l.up)
        );
        // A bad key is an error naming it, not a hang.
        let err = k.sysctl.set("net/ipv4/conf/nothere/forwarding", "1").unwrap_err();
        assert!(err.to_string().contains("nothere"), "{err}");
        drop(inside);

        let missing = std::env::temp_dir().join("cell-net-test-no-such-netns");
        let err = ContainerNet::open(&missing).unwrap_err();
        assert!(err.to_string().contains("cell-net-test-no-such-netns"), "{err}");
    });
}

#[test]
fn loopback_plans_applied_and_torn_down() {
    in_fresh_netns("loopback_plans_applied_and_torn_down", || {
        use cell_core::model::NetworkDriver;
        use cell_net::{ContainerNet, RouteKind, driver};
        let nft = Nft::new().unwrap();
        nft.apply(&ruleset::base_ruleset()).unwrap();
        let host = NetlinkLinks::new().unwrap();
        let k = cell_net::HostKernel {
            links: &host,
            firewall: &nft,
            sysctl: &cell_net::ProcSysctl,
        };
        let mut network = test_network();
        network.net_type = NetworkType::Loopback;
        network.gateway = None;
        network.gateway6 = None;
        network.interface = "lo0".into();
        driver::setup_network(k, &network).unwrap();
        let container = NamedNetns::new("lo-plan");
        let ep = test_endpoint(1);
        let inside = ContainerNet::open(&container.0).unwrap();
        driver::attach(k, inside.kernel(), &network, &ep, NetworkDriver::Ipnet).unwrap();
        let host_if = driver::host_ifname(&ep.id);
        let routes = host.list_routes().unwrap();
        for dest in ["10.77.0.2/32", "fd77::2/128"] {
            assert!(
                routes
                    .iter()
                    .any(|r| r.dest == net(dest) && r.dev.as_deref() == Some(host_if.as_str())),
                "{dest}: {routes:?}"
            );
        }
        assert!(
            routes
                .iter()
                .any(|r| r.dest == net("10.77.0.0/24") && r.kind == RouteKind::Unreachable)
        );
        let marked = host.list_links().unwrap();
        let veth = marked.iter().find(|l| l.name == host_if).unwrap();
        assert_eq!(veth.alias, Some(driver::link_alias(&ep.id)));
        let inner = inside.links().list_routes().unwrap();
        assert!(
            inner
                .iter()
                .any(|r| r.dest == net("0.0.0.0/0") && r.dev.as_deref() == Some("lo0"))
        );

        driver::detach(k, None, &network, &ep).unwrap();
        driver::teardown_network(k, &network).unwrap();
        let routes = host.list_routes().unwrap();
        assert!(
            !routes.iter().any(|r| r.dest == net("10.77.0.0/24")),
            "{routes:?}"
        );
        assert!(host.link_index(&host_if).unwrap().is_none());
        // Teardown again: all absent, all fine.
        driver::detach(k, None, &network, &ep).unwrap();
        driver::teardown_network(k, &network).unwrap();
    });
}
