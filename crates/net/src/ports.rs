//! Published ports in the kernel: DNAT through nftables maps, no proxy.
//!
//! A [`PortForward`] is one published port of one address family: a host
//! port (on every host address, or on one) forwarded to a container's
//! address and port, TCP or UDP. Each forward is two elements under the
//! same key, one in a map to the container's address and one in a map to
//! its port ([`port_elements`]; nft 1.0.6 cannot take a map to
//! `address . port` as JSON):
//!
//! | maps (`_addr`, `_port`)     | key                                     | used for                  |
//! |-----------------------------|-----------------------------------------|---------------------------|
//! | `ports4_*`                  | `inet_proto . inet_service`             | every host address (IPv4) |
//! | `addr_ports4_*`             | `ipv4_addr . inet_proto . inet_service` | one host address (IPv4)   |
//! | `ports6_*`                  | `inet_proto . inet_service`             | every host address (IPv6) |
//! | `addr_ports6_*`             | `ipv6_addr . inet_proto . inet_service` | one host address (IPv6)   |
//!
//! The rules that
//! read them are fixed (see [`ruleset`]): publishing adds elements, never
//! rules, so the ruleset is the same with 1 and 1000 published ports, and a
//! range is one element per port.
//!
//! How each client reaches a published port:
//!
//! - from outside, and from containers (hairpin, other networks): DNAT in
//!   a nat prerouting chain, the "every address" maps gated on `fib daddr
//!   type local`; cell's forward chain accepts DNATed connections before
//!   its isolation drops (except from internal networks);
//! - from the host itself: the same maps in a nat output chain;
//! - hairpin: connections DNATed back into their own subnet are
//!   masqueraded, or the server would answer the client directly and the
//!   client would drop a reply from an address it did not talk to;
//!   clients from elsewhere keep their own address;
//! - `127.0.0.1`: `route_localnet` on cell's host-side interfaces (the
//!   bridge, the host end of a routed veth) and a masquerade of DNATed
//!   127.0.0.0/8 sources; a fixed rule drops new connections to
//!   127.0.0.0/8 that arrive on any interface but `lo`, which
//!   `route_localnet` would otherwise let through;
//! - `[::1]`: see the README ("Published ports").
//!
//! The engine decides which endpoint a container's ports target
//! ([`container_forwards`]); an attach puts the endpoint's forwards in the
//! same transaction as its other elements
//! ([`crate::driver::attach_with_ports`]), a detach takes them out with
//! the rest ([`crate::driver::detach_with_ports`]), celld's start restores
//! them with everything else ([`crate::driver::restore_firewall_with_ports`]),
//! and [`publish`] and [`unpublish`] change the ports of a running
//! container alone, one transaction each.

use crate::error::{NetError, Result};
use crate::nft::Firewall;
use crate::plan::{Op, Plan, Step};
use crate::ruleset::{self, Element, FAMILY_INET};
use cell_core::model::{Endpoint, Network, NetworkType};
use cell_core::port::{PortSpec, Protocol};
use serde_json::{Value, json};
use std::fmt;
use std::net::IpAddr;

/// One published port of one address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortForward {
    /// The host address it answers on; every host address when `None`.
    /// Of the same family as `container_ip`.
    pub host_ip: Option<IpAddr>,
    /// The port on the host.
    pub host_port: u16,
    /// The container's address the traffic is sent to.
    pub container_ip: IpAddr,
    /// The port in the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl PortForward {
    /// Whether this forward is IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.container_ip.is_ipv6()
    }
}

impl fmt::Display for PortForward {
    /// In pot's words: `HOST_ADDR port HOST_PORT -> CONTAINER_ADDR port
    /// CONTAINER_PORT/PROTO`, `*` (or `[::]`) for every host address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host_ip, self.is_ipv6()) {
            (Some(ip), _) => write!(f, "{ip}")?,
            (None, false) => f.write_str("0.0.0.0")?,
            (None, true) => f.write_str("::")?,
        }
        write!(
            f,
            " port {} -> {} port {}/{}",
            self.host_port, self.container_ip, self.container_port, self.protocol
        )
    }
}

fn proto(p: Protocol) -> Value {
    json!(p.to_string())
}

/// The map elements of `forwards`, two per forward (its address and its
/// port), in order. Fails, naming the forward, if a host address is not
/// of its container address's family.
pub fn port_elements(forwards: &[PortForward]) -> Result<Vec<Element>> {
    let mut elements = Vec::with_capacity(2 * forwards.len());
    for fw in forwards {
        elements.extend(port_element(fw)?);
    }
    Ok(elements)
}

/// The two elements of one forward: its container address in one map,
/// its container port in the other, under the same key.
fn port_element(fw: &PortForward) -> Result<[Element; 2]> {
    let v6 = fw.is_ipv6();
    let (maps, key) = match fw.host_ip {
        None => (
            if v6 {
                (ruleset::MAP_PORTS6_ADDR, ruleset::MAP_PORTS6_PORT)
            } else {
                (ruleset::MAP_PORTS4_ADDR, ruleset::MAP_PORTS4_PORT)
            },
            json!({"concat": [proto(fw.protocol), fw.host_port]}),
        ),
        Some(ip) if ip.is_ipv6() == v6 => (
            if v6 {
                (ruleset::MAP_ADDR_PORTS6_ADDR, ruleset::MAP_ADDR_PORTS6_PORT)
            } else {
                (ruleset::MAP_ADDR_PORTS4_ADDR, ruleset::MAP_ADDR_PORTS4_PORT)
            },
            json!({"concat": [ip.to_string(), proto(fw.protocol), fw.host_port]}),
        ),
        Some(_) => {
            return Err(NetError::InvalidPortForward {
                forward: fw.to_string(),
                reason: "the host address and the container address are of different families".into(),
            });
        }
    };
    let element = |set, data| Element {
        family: FAMILY_INET,
        set,
        value: json!([key.clone(), data]),
    };
    Ok([
        element(maps.0, json!(fw.container_ip.to_string())),
        element(maps.1, json!(fw.container_port)),
    ])
}

/// Whether ports may target an endpoint on `net`: the host must route to
/// it (bridge and loopback networks), and the network must not be
/// internal (nothing reaches into it from outside).
pub fn can_target(net: &Network) -> bool {
    matches!(net.net_type, NetworkType::Bridge | NetworkType::Loopback) && !net.internal
}

/// The forwards of a container's published ports. IPv4 forwards target
/// the first endpoint (in the order given) that [`can_target`] allows and
/// that has an IPv4 address; IPv6 forwards the first such with an IPv6
/// address. A spec without a host address gives one forward per family
/// the container has; one with a host address, a forward of that
/// address's family (none if no endpoint has that family: the engine
/// refuses such a spec before). Ranges are the caller's: one spec per
/// port.
pub fn container_forwards<'a>(
    endpoints: impl IntoIterator<Item = (&'a Network, &'a Endpoint)>,
    published: &[PortSpec],
) -> Vec<PortForward> {
    let mut v4 = None;
    let mut v6 = None;
    for (net, ep) in endpoints {
        if !can_target(net) {
            continue;
        }
        v4 = v4.or(ep.ip_address.map(IpAddr::V4));
        v6 = v6.or(ep.ip_address6.map(IpAddr::V6));
    }
    let mut forwards = Vec::new();
    for spec in published {
        for container_ip in [v4, v6].into_iter().flatten() {
            if spec
                .host_ip
                .is_some_and(|h| h.is_ipv6() != container_ip.is_ipv6())
            {
                continue;
            }
            forwards.push(PortForward {
                host_ip: spec.host_ip,
                host_port: spec.host_port,
                container_ip,
                container_port: spec.container_port,
                protocol: spec.protocol,
            });
        }
    }
    forwards
}

/// Those of `forwards` that target one of `ep`'s addresses: what its
/// attach and detach carry.
pub fn forwards_of(ep: &Endpoint, forwards: &[PortForward]) -> Vec<PortForward> {
    let mine =
        |ip: IpAddr| ep.ip_address.map(IpAddr::V4) == Some(ip) || ep.ip_address6.map(IpAddr::V6) == Some(ip);
    forwards
        .iter()
        .filter(|f| mine(f.container_ip))
        .copied()
        .collect()
}

/// Adds the elements of `forwards` to the plan's first firewall step of
/// the same kind (so they go in the same transaction as the endpoint's
/// other elements), or as a first step if it has none. `adding` picks
/// [`Op::AddElements`] (attach) or [`Op::DeleteElements`] (detach).
pub fn with_port_elements(mut plan: Plan, forwards: &[PortForward], adding: bool) -> Result<Plan> {
    let elements = port_elements(forwards)?;
    if elements.is_empty() {
        return Ok(plan);
    }
    let existing = plan.steps.iter_mut().find_map(|s| match (&mut s.op, adding) {
        (Op::AddElements(e), true) | (Op::DeleteElements(e), false) => Some(e),
        _ => None,
    });
    match existing {
        Some(e) => e.extend(elements),
        None => {
            let op = if adding {
                Op::AddElements(elements)
            } else {
                Op::DeleteElements(elements)
            };
            plan.steps.insert(
                0,
                Step {
                    place: crate::plan::Place::Host,
                    op,
                },
            );
        }
    }
    Ok(plan)
}

/// Publishes `forwards` of a running container, in one transaction.
/// Idempotent for forwards already there; fails (changing nothing) if a
/// host port is mapped to something else already.
pub fn publish(firewall: &dyn Firewall, forwards: &[PortForward]) -> Result<()> {
    let elements = port_elements(forwards)?;
    if elements.is_empty() {
        return Ok(());
    }
    firewall.apply(&ruleset::batch(ruleset::add_elements(&elements)))
}

/// Takes `forwards` away, in one transaction. Idempotent: forwards that
/// are not there are no error.
pub fn unpublish(firewall: &dyn Firewall, forwards: &[PortForward]) -> Result<()> {
    let elements = port_elements(forwards)?;
    if elements.is_empty() {
        return Ok(());
    }
    firewall.apply(&ruleset::batch(ruleset::delete_elements(&elements)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::FakeFirewall;
    use crate::test_fixtures::network;

    fn fw(host_ip: Option<&str>, host_port: u16, container_ip: &str) -> PortForward {
        PortForward {
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port,
            container_ip: container_ip.parse().unwrap(),
            container_port: 80,
            protocol: Protocol::Tcp,
        }
    }

    fn endpoint(id: &str, v4: Option<&str>, v6: Option<&str>) -> Endpoint {
        Endpoint {
            id: id.into(),
            network_id: "0123456789ab".into(),
            container_id: "bbbbbbbbbbbb".into(),
            epair: None,
            ip_address: v4.map(|a| a.parse().unwrap()),
            ip_address6: v6.map(|a| a.parse().unwrap()),
            mac: None,
        }
    }

    fn spec(s: &str) -> PortSpec {
        s.parse().unwrap()
    }

    #[test]
    fn each_forward_is_one_element_of_the_map_of_its_family_and_binding() {
        let elems = port_elements(&[
            fw(None, 8080, "10.1.0.2"),
            fw(Some("198.51.100.2"), 8081, "10.1.0.2"),
            fw(None, 8080, "fd00:1::2"),
            fw(Some("::1"), 8082, "fd00:1::2"),
        ])
        .unwrap();
        let sets: Vec<&str> = elems.iter().map(|e| e.set).collect();
        assert_eq!(
            sets,
            [
                "ports4_addr",
                "ports4_port",
                "addr_ports4_addr",
                "addr_ports4_port",
                "ports6_addr",
                "ports6_port",
                "addr_ports6_addr",
                "addr_ports6_port"
            ]
        );
        assert!(elems.iter().all(|e| e.family == "inet"));
        assert_eq!(elems[0].value, json!([{"concat": ["tcp", 8080]}, "10.1.0.2"]));
        assert_eq!(elems[1].value, json!([{"concat": ["tcp", 8080]}, 80]));
        assert_eq!(
            elems[2].value,
            json!([{"concat": ["198.51.100.2", "tcp", 8081]}, "10.1.0.2"])
        );
        assert_eq!(elems[7].value, json!([{"concat": ["::1", "tcp", 8082]}, 80]));
        let mut udp = fw(None, 53, "10.1.0.2");
        udp.protocol = Protocol::Udp;
        assert_eq!(port_elements(&[udp]).unwrap()[1].value[0]["concat"][0], "udp");
    }

    #[test]
    fn a_host_address_of_the_other_family_is_refused_by_name() {
        let err = port_elements(&[fw(Some("198.51.100.2"), 8080, "fd00:1::2")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("198.51.100.2 port 8080 -> fd00:1::2 port 80/tcp"),
            "{err}"
        );
    }

    #[test]
    fn forwards_target_the_first_routed_endpoint_of_each_family() {
        let custom = network(NetworkType::Custom);
        let bridge = network(NetworkType::Bridge);
        let mut internal = network(NetworkType::Bridge);
        internal.internal = true;
        let lo = network(NetworkType::Loopback);
        let on_custom = endpoint("aaaaaaaaaaaa", Some("192.168.1.5"), None);
        let on_internal = endpoint("cccccccccccc", Some("10.9.0.2"), None);
        let on_bridge = endpoint("bbbbbbbbbbbb", Some("10.1.0.2"), None);
        let on_lo = endpoint("dddddddddddd", Some("10.2.0.2"), Some("fd00:2::2"));
        let eps = [
            (&custom, &on_custom),
            (&internal, &on_internal),
            (&bridge, &on_bridge),
            (&lo, &on_lo),
        ];
        let forwards = container_forwards(
            eps,
            &[spec("8080:80"), spec("127.0.0.1:8081:80"), spec("[::1]:8082:80")],
        );
        assert_eq!(
            forwards,
            [
                fw(None, 8080, "10.1.0.2"),
                fw(None, 8080, "fd00:2::2"),
                fw(Some("127.0.0.1"), 8081, "10.1.0.2"),
                fw(Some("::1"), 8082, "fd00:2::2"),
            ]
        );
        assert_eq!(
            forwards_of(&on_bridge, &forwards),
            forwards[..1]
                .iter()
                .chain(&forwards[2..3])
                .copied()
                .collect::<Vec<_>>()
        );
        assert_eq!(forwards_of(&on_lo, &forwards).len(), 2);
        assert!(forwards_of(&on_custom, &forwards).is_empty());
        assert!(container_forwards([(&custom, &on_custom)], &[spec("80")]).is_empty());
    }

    #[test]
    fn port_elements_join_the_attach_transaction() {
        let mut plan = Plan::new();
        plan.host(Op::CreateBridge { name: "b".into() });
        let forwards = [fw(None, 8080, "10.1.0.2")];
        let plan = with_port_elements(plan, &forwards, true).unwrap();
        assert!(matches!(&plan.steps[0].op, Op::AddElements(e) if e.len() == 2));
        let plan = with_port_elements(plan, &[fw(None, 8081, "10.1.0.2")], true).unwrap();
        assert_eq!(plan.steps.len(), 2, "one firewall step, not two");
        assert!(matches!(&plan.steps[0].op, Op::AddElements(e) if e.len() == 4));
        let plan = with_port_elements(plan, &forwards, false).unwrap();
        assert!(matches!(&plan.steps[0].op, Op::DeleteElements(e) if e.len() == 2));
        assert_eq!(with_port_elements(Plan::new(), &[], true).unwrap(), Plan::new());
    }

    #[test]
    fn publish_and_unpublish_are_one_transaction_each() {
        let firewall = FakeFirewall::new();
        let forwards = [fw(None, 8080, "10.1.0.2"), fw(None, 8080, "fd00:1::2")];
        publish(&firewall, &forwards).unwrap();
        unpublish(&firewall, &forwards).unwrap();
        publish(&firewall, &[]).unwrap();
        let batches = firewall.batches();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0]["nftables"].as_array().unwrap().len(), 4);
        // Deletes are idempotent: each is an add and a delete.
        assert_eq!(batches[1]["nftables"].as_array().unwrap().len(), 8);
    }

    #[test]
    fn the_display_is_pots() {
        assert_eq!(
            fw(None, 8080, "10.1.0.2").to_string(),
            "0.0.0.0 port 8080 -> 10.1.0.2 port 80/tcp"
        );
        assert_eq!(
            fw(Some("::1"), 8080, "fd00::2").to_string(),
            "::1 port 8080 -> fd00::2 port 80/tcp"
        );
    }
}
