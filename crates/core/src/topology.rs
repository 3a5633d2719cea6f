//! The topology view: what `cell network show` prints (potnet's `show`).
//!
//! The engine gathers a [`Topology`] (the pools, each network's block and
//! address map, the host's interfaces, the containers on networks and their
//! published ports) and the API serves it as JSON, the `json` format. The
//! client renders the other two formats here, from that JSON:
//! [`render_text`] for people and [`render_dot`] for Graphviz. The address
//! map of one network is computed by [`address_map`], from the network and
//! the addresses its endpoints hold, with the rules of [`crate::ipam`].

use crate::ipam;
use crate::model::{Network, NetworkType};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Everything `cell network show` shows; `GET /topology`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// celld's IPv4 pool.
    pub pool: String,
    /// celld's IPv6 pool.
    pub pool6: String,
    /// The host's own interfaces (not cell's bridges and veths) with their
    /// addresses.
    pub host_interfaces: Vec<HostInterface>,
    /// The networks shown, oldest first.
    pub networks: Vec<NetworkView>,
    /// The containers on those networks.
    pub containers: Vec<ContainerView>,
}

/// One interface of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInterface {
    /// Its name.
    pub name: String,
    /// Its addresses with their prefixes.
    pub addresses: Vec<String>,
}

/// One network: its block and its address map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `loopback`, `bridge` or `custom`.
    #[serde(rename = "type")]
    pub net_type: String,
    /// Its interface (the bridge, `cellN`, or a custom network's parent).
    pub interface: String,
    /// Whether celld made it itself (`public`).
    pub predefined: bool,
    /// Whether its IPv4 block was carved from the pool.
    pub from_pool: bool,
    /// Whether its IPv6 block was carved from the pool6.
    pub from_pool6: bool,
    /// Its IPv4 block.
    pub subnet: Option<String>,
    /// Its IPv6 block.
    pub subnet6: Option<String>,
    /// The interface its NAT goes out of, if any.
    pub nat: Option<String>,
    /// Whether no traffic leaves it.
    pub internal: bool,
    /// Network, gateway, each taken address and broadcast, IPv4 first.
    pub addresses: Vec<AddressEntry>,
    /// How many IPv4 addresses containers may still get.
    pub free: Option<u64>,
    /// How many IPv6 addresses containers may still get (a decimal: a /64
    /// holds more than JSON numbers carry exactly).
    pub free6: Option<String>,
}

/// One line of a network's address map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressEntry {
    /// The address.
    pub address: String,
    /// What it is.
    pub role: AddressRole,
    /// The container holding it (`role` is `container`).
    pub container: Option<String>,
}

/// What an address of a network's map is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressRole {
    /// The network address (IPv6: the subnet-router anycast address).
    Network,
    /// The gateway, held by the bridge.
    Gateway,
    /// A container's.
    Container,
    /// The IPv4 broadcast address.
    Broadcast,
}

/// A container on one or more of the networks shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it runs.
    pub running: bool,
    /// Its network driver.
    pub driver: String,
    /// Its addresses, per network name.
    pub endpoints: Vec<EndpointView>,
    /// Its published ports.
    pub ports: Vec<PortView>,
}

/// A container's place on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    /// The network's name.
    pub network: String,
    /// Its IPv4 address there.
    pub ip_address: Option<String>,
    /// Its IPv6 address there.
    pub ip_address6: Option<String>,
}

/// One published port of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    /// The host address; all addresses when absent.
    pub host_ip: Option<String>,
    /// The port on the host.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// The address map of `net`, given the addresses its endpoints hold with
/// their containers' names: network, gateway, the taken addresses in
/// order, broadcast (IPv4 bridge and custom networks: a loopback network
/// hands its broadcast address out), the IPv4 family first. Also the
/// number of addresses still free in each family.
pub fn address_map(
    net: &Network,
    taken: &[(IpAddr, String)],
) -> (Vec<AddressEntry>, Option<u64>, Option<u128>) {
    let mut entries = Vec::new();
    let entry = |address: IpAddr, role, container: Option<String>| AddressEntry {
        address: address.to_string(),
        role,
        container,
    };
    let mut sorted: Vec<&(IpAddr, String)> = taken.iter().collect();
    sorted.sort();
    let mut free = None;
    if let Some(subnet) = net.subnet.map(|s| s.trunc()) {
        let reserves = subnet.prefix_len() < 31;
        if reserves {
            entries.push(entry(subnet.network().into(), AddressRole::Network, None));
        }
        if let Some(gw) = net.gateway {
            entries.push(entry(gw.into(), AddressRole::Gateway, None));
        }
        let mine: Vec<_> = sorted.iter().filter(|(a, _)| a.is_ipv4()).collect();
        for (address, name) in &mine {
            entries.push(entry(*address, AddressRole::Container, Some(name.clone())));
        }
        if reserves && net.net_type != NetworkType::Loopback {
            entries.push(entry(subnet.broadcast().into(), AddressRole::Broadcast, None));
        }
        free = Some(ipam::usable_count_v4(net).saturating_sub(mine.len() as u64));
    }
    let mut free6 = None;
    if let Some(subnet) = net.subnet6.map(|s| s.trunc()) {
        if subnet.prefix_len() < 127 {
            entries.push(entry(subnet.network().into(), AddressRole::Network, None));
        }
        if let Some(gw) = net.gateway6 {
            entries.push(entry(gw.into(), AddressRole::Gateway, None));
        }
        let mine: Vec<_> = sorted.iter().filter(|(a, _)| a.is_ipv6()).collect();
        for (address, name) in &mine {
            entries.push(entry(*address, AddressRole::Container, Some(name.clone())));
        }
        free6 = Some(ipam::usable_count_v6(net).saturating_sub(mine.len() as u128));
    }
    (entries, free, free6)
}

/// The text of `cell network show`: the pools, then per network its
/// blocks, its address map and how many addresses are free.
pub fn render_text(t: &Topology) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pool   {}", t.pool);
    let _ = writeln!(out, "pool6  {}", t.pool6);
    for n in &t.networks {
        let mut notes = vec![format!("{} on {}", n.net_type, n.interface)];
        if n.predefined {
            notes.push("predefined".into());
        }
        if n.internal {
            notes.push("internal".into());
        } else if let Some(nat) = &n.nat {
            notes.push(format!("NAT via {nat}"));
        }
        let _ = writeln!(out, "\nnetwork {} ({})", n.name, notes.join(", "));
        for (block, carved) in [(&n.subnet, n.from_pool), (&n.subnet6, n.from_pool6)] {
            if let Some(block) = block {
                let origin = if carved { "  (from the pool)" } else { "" };
                let _ = writeln!(out, "  {block}{origin}");
            }
        }
        let width = n.addresses.iter().map(|a| a.address.len()).max().unwrap_or(0);
        for a in &n.addresses {
            let what = match (a.role, &a.container) {
                (AddressRole::Container, Some(name)) => name.as_str(),
                (AddressRole::Network, _) => "network",
                (AddressRole::Gateway, _) => "gateway",
                (AddressRole::Broadcast, _) => "broadcast",
                (AddressRole::Container, None) => "container",
            };
            let _ = writeln!(out, "    {:width$}  {what}", a.address);
        }
        let mut free = Vec::new();
        if let Some(count) = n.free {
            free.push(format!("{count} free"));
        }
        if let Some(count) = &n.free6 {
            free.push(format!("{count} free IPv6"));
        }
        if !free.is_empty() {
            let _ = writeln!(out, "  {}", free.join(", "));
        }
    }
    out
}

/// A Graphviz graph (`dot -Tsvg`) of the host's interfaces, the networks,
/// the containers on them with their addresses, NAT and published ports.
pub fn render_dot(t: &Topology) -> String {
    let mut out = String::new();
    out.push_str("digraph cell {\n");
    out.push_str("  graph [rankdir=LR, fontname=\"sans-serif\", label=");
    out.push_str(&quote(&format!("cell: pool {}, pool6 {}", t.pool, t.pool6)));
    out.push_str("];\n  node [fontname=\"sans-serif\", fontsize=11];\n");
    out.push_str("  edge [fontname=\"sans-serif\", fontsize=10];\n");
    out.push_str("  subgraph cluster_host {\n    label=\"host\";\n    style=rounded;\n");
    for i in &t.host_interfaces {
        let mut label = i.name.clone();
        for a in &i.addresses {
            label.push('\n');
            label.push_str(a);
        }
        let _ = writeln!(
            out,
            "    {} [shape=box, style=filled, fillcolor=\"#e8e8e8\", label={}];",
            quote(&format!("if:{}", i.name)),
            quote(&label)
        );
    }
    out.push_str("  }\n");
    for n in &t.networks {
        let mut label = format!("{} ({} {})", n.name, n.net_type, n.interface);
        for block in [&n.subnet, &n.subnet6].into_iter().flatten() {
            label.push('\n');
            label.push_str(block);
        }
        if let Some(free) = n.free {
            let _ = write!(label, "\n{free} free");
        }
        let _ = writeln!(
            out,
            "  {} [shape=ellipse, style=filled, fillcolor=\"#cfe2f3\", label={}];",
            quote(&format!("net:{}", n.name)),
            quote(&label)
        );
        if let (Some(nat), false) = (&n.nat, n.internal) {
            if !t.host_interfaces.iter().any(|i| &i.name == nat) {
                let _ = writeln!(
                    out,
                    "  {} [shape=box, label={}];",
                    quote(&format!("if:{nat}")),
                    quote(nat)
                );
            }
            let _ = writeln!(
                out,
                "  {} -> {} [label=\"NAT\", style=dashed, color=\"#b45f06\"];",
                quote(&format!("net:{}", n.name)),
                quote(&format!("if:{nat}"))
            );
        }
    }
    for c in &t.containers {
        let state = if c.running { "running" } else { "stopped" };
        let _ = writeln!(
            out,
            "  {} [shape=component, style=filled, fillcolor={}, label={}];",
            quote(&format!("ctr:{}", c.name)),
            if c.running { "\"#d9ead3\"" } else { "\"#f4f4f4\"" },
            quote(&format!("{}\n{} {state}", c.name, c.driver))
        );
        for e in &c.endpoints {
            let addresses: Vec<&str> = [&e.ip_address, &e.ip_address6]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            let _ = writeln!(
                out,
                "  {} -> {} [dir=none, label={}];",
                quote(&format!("ctr:{}", c.name)),
                quote(&format!("net:{}", e.network)),
                quote(&addresses.join("\n"))
            );
        }
        for p in &c.ports {
            let host = p.host_ip.as_deref().unwrap_or("*");
            let node = format!("port:{}:{}:{}/{}", c.name, host, p.host_port, p.protocol);
            let _ = writeln!(
                out,
                "  {} [shape=cds, style=filled, fillcolor=\"#fff2cc\", label={}];",
                quote(&node),
                quote(&format!("{host}:{}/{}", p.host_port, p.protocol))
            );
            let _ = writeln!(
                out,
                "  {} -> {} [label={}, color=\"#bf9000\"];",
                quote(&node),
                quote(&format!("ctr:{}", c.name)),
                quote(&format!("port {}", p.container_port))
            );
        }
    }
    out.push_str("}\n");
    out
}

/// A Graphviz double-quoted string; a newline becomes Graphviz's `\n`.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge() -> Network {
        Network {
            id: "0123456789ab".into(),
            name: "public".into(),
            net_type: NetworkType::Bridge,
            interface: "cellpub".into(),
            subnet: Some("10.192.0.0/29".parse().unwrap()),
            subnet6: Some("fd00:1::/64".parse().unwrap()),
            gateway: Some("10.192.0.1".parse().unwrap()),
            gateway6: Some("fd00:1::1".parse().unwrap()),
            nat: Some("em0".into()),
            icc: true,
            internal: false,
            antispoof: true,
        }
    }

    fn taken() -> Vec<(IpAddr, String)> {
        vec![
            ("10.192.0.3".parse().unwrap(), "db".into()),
            ("10.192.0.2".parse().unwrap(), "web".into()),
            ("fd00:1::2".parse().unwrap(), "web".into()),
        ]
    }

    #[test]
    fn the_address_map_lists_every_role_in_order() {
        let (map, free, free6) = address_map(&bridge(), &taken());
        let lines: Vec<(String, AddressRole, Option<String>)> = map
            .into_iter()
            .map(|e| (e.address, e.role, e.container))
            .collect();
        use AddressRole::*;
        let s = |x: &str| x.to_string();
        assert_eq!(
            lines,
            vec![
                (s("10.192.0.0"), Network, None),
                (s("10.192.0.1"), Gateway, None),
                (s("10.192.0.2"), Container, Some(s("web"))),
                (s("10.192.0.3"), Container, Some(s("db"))),
                (s("10.192.0.7"), Broadcast, None),
                (s("fd00:1::"), Network, None),
                (s("fd00:1::1"), Gateway, None),
                (s("fd00:1::2"), Container, Some(s("web"))),
            ]
        );
        // A /29 holds 8: network, gateway, broadcast, and 5 for containers.
        assert_eq!(free, Some(3));
        assert_eq!(free6, Some((1u128 << 64) - 2 - 1));
        // A loopback network hands out its broadcast address: no such line.
        let lo = crate::model::Network {
            net_type: NetworkType::Loopback,
            gateway: None,
            subnet6: None,
            ..bridge()
        };
        let (map, free, free6) = address_map(&lo, &[]);
        assert_eq!(map.len(), 1, "{map:?}");
        assert_eq!((free, free6), (Some(7), None));
    }

    fn topology() -> Topology {
        let net = bridge();
        let (addresses, free, free6) = address_map(&net, &taken());
        Topology {
            pool: "10.192.0.0/10".into(),
            pool6: "fd00:1::/48".into(),
            host_interfaces: vec![HostInterface {
                name: "em0".into(),
                addresses: vec!["198.51.100.2/24".into()],
            }],
            networks: vec![NetworkView {
                id: net.id.clone(),
                name: net.name.clone(),
                net_type: "bridge".into(),
                interface: net.interface.clone(),
                predefined: true,
                from_pool: true,
                from_pool6: false,
                subnet: Some("10.192.0.0/29".into()),
                subnet6: Some("fd00:1::/64".into()),
                nat: Some("em0".into()),
                internal: false,
                addresses,
                free,
                free6: free6.map(|f| f.to_string()),
            }],
            containers: vec![ContainerView {
                id: "c00000000001".into(),
                name: "web".into(),
                running: true,
                driver: "vnet".into(),
                endpoints: vec![EndpointView {
                    network: "public".into(),
                    ip_address: Some("10.192.0.2".into()),
                    ip_address6: Some("fd00:1::2".into()),
                }],
                ports: vec![PortView {
                    host_ip: None,
                    host_port: 8080,
                    container_port: 80,
                    protocol: "tcp".into(),
                }],
            }],
        }
    }

    #[test]
    fn text_shows_pools_blocks_and_the_map() {
        let text = render_text(&topology());
        assert!(
            text.starts_with("pool   10.192.0.0/10\npool6  fd00:1::/48\n"),
            "{text}"
        );
        assert!(
            text.contains("network public (bridge on cellpub, predefined, NAT via em0)\n  10.192.0.0/29  (from the pool)\n  fd00:1::/64\n"),
            "{text}"
        );
        assert!(
            text.contains("    10.192.0.0  network\n    10.192.0.1  gateway\n"),
            "{text}"
        );
        assert!(
            text.contains("    10.192.0.2  web\n    10.192.0.3  db\n    10.192.0.7  broadcast\n"),
            "{text}"
        );
        assert!(
            text.contains("  3 free, 18446744073709551613 free IPv6\n"),
            "{text}"
        );
    }

    #[test]
    fn dot_names_every_object_once_and_balances() {
        let dot = render_dot(&topology());
        assert!(
            dot.starts_with("digraph cell {\n") && dot.ends_with("}\n"),
            "{dot}"
        );
        assert_eq!(dot.matches('{').count(), dot.matches('}').count());
        assert_eq!(dot.matches('"').count() % 2, 0);
        for needle in [
            "\"if:em0\" [shape=box",
            "\"net:public\" [shape=ellipse",
            "\"ctr:web\" [shape=component",
            "\"ctr:web\" -> \"net:public\" [dir=none, label=\"10.192.0.2\\nfd00:1::2\"]",
            "\"net:public\" -> \"if:em0\" [label=\"NAT\"",
            "\"port:web:*:8080/tcp\" -> \"ctr:web\" [label=\"port 80\"",
        ] {
            assert!(dot.contains(needle), "{needle} missing from\n{dot}");
        }
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\"");
    }

    #[test]
    fn json_round_trips() {
        let t = topology();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["networks"][0]["type"], "bridge");
        assert_eq!(json["networks"][0]["addresses"][0]["role"], "network");
        assert_eq!(serde_json::from_value::<Topology>(json).unwrap(), t);
    }
}
