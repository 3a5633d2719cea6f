//! The drivers: how a network and a container's endpoint on it become
//! kernel objects, and go away again.
//!
//! | network  | host side                                  | container side |
//! |----------|--------------------------------------------|----------------|
//! | loopback | veth end `cvID`, proxy ARP, `fe80::1`, a /32 (/128) route per address | the network's interface name, /32 (/128), default route out of it |
//! | bridge   | the bridge (gateway addresses), veth end `cvID` as its port | vnet: the subnet's mask and a default route to the gateway; ipnet: /32 and an on-link route to the subnet |
//! | custom   | nothing: the parent interface is the user's | a macvlan child of the parent, /32 and an on-link route to the subnet |
//!
//! Every function takes the kernel through traits ([`Links`], [`Firewall`],
//! [`Sysctl`]), so plans are tested with the fakes. Firewall elements of an
//! endpoint go in before its links exist: anti-spoofing is in force from
//! the first frame. The same functions repair state after a restart of
//! `celld` or of the machine ([`repair_endpoint`], [`restore_firewall`]).

use crate::error::Result;
use crate::links::Links;
use crate::mac::MacAddr;
use crate::nft::Firewall;
use crate::ruleset;
use crate::sysctl::Sysctl;
use cell_core::model::{Endpoint, Network, NetworkDriver, NetworkType};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

/// The kernel of the host's network namespace, as the drivers see it.
#[derive(Clone, Copy)]
pub struct HostKernel<'a> {
    /// Links, addresses and routes of the host.
    pub links: &'a dyn Links,
    /// cell's nftables tables.
    pub firewall: &'a dyn Firewall,
    /// Kernel parameters of the host.
    pub sysctl: &'a dyn Sysctl,
}

/// The kernel of a container's network namespace, open as `netns_fd`.
#[derive(Clone, Copy)]
pub struct ContainerKernel<'a> {
    /// Links, addresses and routes inside the container.
    pub links: &'a dyn Links,
    /// Kernel parameters inside the container.
    pub sysctl: &'a dyn Sysctl,
    /// The namespace, for creating links directly inside it.
    pub netns_fd: RawFd,
}

/// The prefix of the host ends of cell's veths. With the 12 hex digits of
/// the endpoint id the name is 14 bytes, inside `IFNAMSIZ`, and tells
/// cell's links from anyone else's.
pub const HOST_IF_PREFIX: &str = "cv";

/// The address the host end of every routed (loopback network) veth holds,
/// so containers have one IPv6 next hop whatever the network.
pub const ROUTED_GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// The host end of an endpoint's veth.
pub fn host_ifname(endpoint_id: &str) -> String {
    format!("{HOST_IF_PREFIX}{endpoint_id}")
}

/// Whether `name` is the host end of one of cell's veths.
pub fn is_host_ifname(name: &str) -> bool {
    name.strip_prefix(HOST_IF_PREFIX)
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether containers on networks of this type get a veth (and so a host
/// end and an `epair` in inspect).
pub fn uses_veth(net_type: NetworkType) -> bool {
    matches!(net_type, NetworkType::Loopback | NetworkType::Bridge)
}

/// A MAC derived from an endpoint's or network's id: locally administered
/// unicast (`02:...`), stable across restarts, so the anti-spoofing
/// elements computed at repair time match the interface.
pub fn mac_from_id(endpoint_id: &str) -> MacAddr {
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    for (i, byte) in mac.iter_mut().skip(1).enumerate() {
        *byte = endpoint_id
            .get(2 * i..2 * i + 2)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .unwrap_or(0);
    }
    MacAddr(mac)
}

/// Creates what a network needs on the host: its links and routes (see
/// [`setup_network_links`]) and its firewall elements. Idempotent.
pub fn setup_network(k: HostKernel<'_>, net: &Network) -> Result<()> {
    setup_network_links(k, net)?;
    add_elements(k.firewall, &ruleset::network_elements(net))
}

/// Creates (or repairs) what a network needs on the host besides its
/// firewall elements: forwarding, the bridge with its MAC and gateway
/// addresses, the unreachable routes of a loopback network. Idempotent. A
/// custom network's parent interface must exist. At `celld` start this is
/// all a network needs, as [`restore_firewall`] puts every element back.
pub fn setup_network_links(k: HostKernel<'_>, net: &Network) -> Result<()> {
    match net.net_type {
        NetworkType::Bridge => {
            if k.links.link_index(&net.interface)?.is_none() {
                k.links.create_bridge(&net.interface)?;
            }
            // A bridge without an address of its own takes the lowest of
            // its ports' and changes it as ports come and go, cutting the
            // containers off their gateway until their ARP entries expire.
            k.links.set_mac(&net.interface, mac_from_id(&net.id))?;
            if let (Some(subnet), Some(gw)) = (net.subnet, net.gateway) {
                k.links
                    .add_address(&net.interface, IpNet::V4(with_prefix4(gw, subnet)))?;
            }
            if let (Some(subnet), Some(gw)) = (net.subnet6, net.gateway6) {
                k.links
                    .add_address(&net.interface, IpNet::V6(with_prefix6(gw, subnet)))?;
            }
            k.links.set_up(&net.interface)?;
        }
        NetworkType::Custom => {
            if k.links.link_index(&net.interface)?.is_none() {
                return Err(crate::NetError::LinkNotFound {
                    name: net.interface.clone(),
                });
            }
        }
        NetworkType::Loopback => {
            // Each container's address is routed to its veth; an address
            // of the subnet that no container holds must not leave by the
            // default route with a private source.
            for subnet in subnets(net) {
                k.links.add_unreachable_route(subnet)?;
            }
        }
    }
    if net.net_type != NetworkType::Custom {
        enable_forwarding(k, net)?;
    }
    Ok(())
}

/// Adds `elements` in one transaction; nothing to do, no transaction.
fn add_elements(firewall: &dyn Firewall, elements: &[ruleset::Element]) -> Result<()> {
    if elements.is_empty() {
        return Ok(());
    }
    firewall.apply(&ruleset::batch(ruleset::add_elements(elements)))
}

/// Deletes `elements` in one transaction; nothing to do, no transaction.
fn delete_elements(firewall: &dyn Firewall, elements: &[ruleset::Element]) -> Result<()> {
    if elements.is_empty() {
        return Ok(());
    }
    firewall.apply(&ruleset::batch(ruleset::delete_elements(elements)))
}

fn enable_forwarding(k: HostKernel<'_>, net: &Network) -> Result<()> {
    if net.subnet.is_some() {
        k.sysctl.set("net/ipv4/ip_forward", "1")?;
    }
    if net.subnet6.is_some() {
        k.sysctl.set("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// Removes what [`setup_network`] made: the firewall elements and the
/// bridge (never a custom network's parent). Idempotent.
pub fn teardown_network(k: HostKernel<'_>, net: &Network) -> Result<()> {
    delete_elements(k.firewall, &ruleset::network_elements(net))?;
    match net.net_type {
        NetworkType::Bridge => k.links.delete_link(&net.interface)?,
        NetworkType::Loopback => {
            for subnet in subnets(net) {
                k.links.del_unreachable_route(subnet)?;
            }
        }
        NetworkType::Custom => {}
    }
    Ok(())
}

fn subnets(net: &Network) -> impl Iterator<Item = IpNet> {
    let v4 = net.subnet.map(|s| IpNet::V4(s.trunc()));
    let v6 = net.subnet6.map(|s| IpNet::V6(s.trunc()));
    v4.into_iter().chain(v6)
}

/// Attaches a running container to a network. On failure everything done
/// is undone.
pub fn attach(
    k: HostKernel<'_>,
    c: ContainerKernel<'_>,
    net: &Network,
    ep: &Endpoint,
    driver: NetworkDriver,
) -> Result<()> {
    let mut clock = StepClock::new();
    let attached = endpoint_elements(net, ep)
        .and_then(|elements| add_elements(k.firewall, &elements))
        .inspect(|()| clock.lap("firewall"))
        .and_then(|()| create_links(k, c.netns_fd, net, ep))
        .inspect(|()| clock.lap("create"))
        .and_then(|()| configure_host_side(k, net, ep))
        .inspect(|()| clock.lap("host"))
        .and_then(|()| configure_inside(c, net, ep, driver))
        .inspect(|()| clock.lap("inside"));
    tracing::debug!(endpoint = %ep.id, network = %net.name, steps = %clock, "attach");
    if let Err(e) = attached {
        if let Err(undo) = detach(k, Some(c.links), net, ep) {
            tracing::warn!(endpoint = %ep.id, "undoing a failed attach failed too: {undo}");
        }
        return Err(e);
    }
    Ok(())
}

/// Microseconds per step of a multi-step operation, for debug logs.
struct StepClock {
    last: std::time::Instant,
    laps: Vec<(&'static str, u128)>,
}

impl StepClock {
    fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((step, (now - self.last).as_micros()));
        self.last = now;
    }
}

impl std::fmt::Display for StepClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (step, us)) in self.laps.iter().enumerate() {
            write!(f, "{}{step}={us}us", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

/// Detaches an endpoint: its firewall elements and its links (with their
/// routes). `ctr` is the container's namespace if it still exists; it is
/// needed only for a custom network's macvlan, which has no host end.
/// Idempotent.
pub fn detach(k: HostKernel<'_>, ctr: Option<&dyn Links>, net: &Network, ep: &Endpoint) -> Result<()> {
    delete_elements(k.firewall, &endpoint_elements(net, ep)?)?;
    if uses_veth(net.net_type) {
        // Deleting one end of a veth deletes both, and the routes via it.
        k.links.delete_link(&host_ifname(&ep.id))?;
    } else if let Some(ctr) = ctr {
        ctr.delete_link(&net.interface)?;
    }
    Ok(())
}

/// Brings an attached endpoint of a running container back to what
/// [`attach`] made: after a restart of `celld` only missing pieces are
/// added; after the host lost the links (a deleted bridge drops nothing,
/// but a deleted veth loses both ends), they are made again. Firewall
/// elements are left to [`restore_firewall`].
pub fn repair_endpoint(
    k: HostKernel<'_>,
    c: ContainerKernel<'_>,
    net: &Network,
    ep: &Endpoint,
    driver: NetworkDriver,
) -> Result<()> {
    let present = if uses_veth(net.net_type) {
        k.links.link_index(&host_ifname(&ep.id))?.is_some()
    } else {
        c.links.link_index(&net.interface)?.is_some()
    };
    if !present {
        create_links(k, c.netns_fd, net, ep)?;
    }
    configure_host_side(k, net, ep)?;
    configure_inside(c, net, ep, driver)
}

/// Rebuilds cell's tables in one transaction: the tables are deleted and
/// made again with every element `networks` and `endpoints` need. Elements
/// of things that no longer exist vanish with the old tables; traffic of
/// the others is never unfiltered, as the kernel swaps the whole batch at
/// once.
pub fn restore_firewall(
    firewall: &dyn Firewall,
    networks: &[Network],
    endpoints: &[(&Network, &Endpoint)],
) -> Result<()> {
    let mut elements = Vec::new();
    for net in networks {
        elements.extend(ruleset::network_elements(net));
    }
    for (net, ep) in endpoints {
        elements.extend(endpoint_elements(net, ep)?);
    }
    let mut cmds = ruleset::delete_table_commands();
    cmds.extend(ruleset::base_commands());
    cmds.extend(ruleset::add_elements(&elements));
    firewall.apply(&ruleset::batch(cmds))
}

/// Deletes those of `names` that exist; returns the ones deleted. One dump
/// of the links rather than a lookup per name, as thousands of stopped
/// containers may be asked about.
pub fn remove_links(links: &dyn Links, names: &HashSet<String>) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for link in links.list_links()? {
        if names.contains(&link.name) {
            links.delete_link(&link.name)?;
            removed.push(link.name);
        }
    }
    Ok(removed)
}

/// The firewall elements of an endpoint, with the MAC its interface gets.
fn endpoint_elements(net: &Network, ep: &Endpoint) -> Result<Vec<ruleset::Element>> {
    let mac = uses_veth(net.net_type).then(|| mac_from_id(&ep.id));
    ruleset::endpoint_elements(net, ep, &host_ifname(&ep.id), mac)
}

/// Creates the endpoint's link with its container end already inside the
/// container's namespace (one message, no move).
fn create_links(k: HostKernel<'_>, netns_fd: RawFd, net: &Network, ep: &Endpoint) -> Result<()> {
    if uses_veth(net.net_type) {
        k.links
            .create_veth_pair(&host_ifname(&ep.id), &net.interface, Some(netns_fd))
    } else {
        // The child carries the parent's name inside, as an alias on em0
        // does on FreeBSD.
        k.links
            .create_macvlan(&net.interface, &net.interface, Some(netns_fd))
    }
}

fn configure_host_side(k: HostKernel<'_>, net: &Network, ep: &Endpoint) -> Result<()> {
    let host_if = host_ifname(&ep.id);
    // A bridge port needs no address of its own, nor does a routed veth of
    // a network without IPv6; without IPv6 the new link sends no duplicate
    // address probes and multicast reports, which a bridge would flood to
    // every other port (the cost of an attach would grow with their count).
    if net.net_type == NetworkType::Bridge || (uses_veth(net.net_type) && net.subnet6.is_none()) {
        k.sysctl
            .set(&format!("net/ipv6/conf/{host_if}/disable_ipv6"), "1")?;
    }
    match net.net_type {
        NetworkType::Loopback => {
            if ep.ip_address.is_some() {
                // The container sends everything to the link; the host end
                // answers ARP for every address it can route, at once.
                k.sysctl.set(&format!("net/ipv4/conf/{host_if}/proxy_arp"), "1")?;
                k.sysctl
                    .set(&format!("net/ipv4/neigh/{host_if}/proxy_delay"), "0")?;
            }
            k.links.set_up(&host_if)?;
            if ep.ip_address6.is_some() {
                k.links
                    .add_address(&host_if, IpNet::V6(Ipv6Net::new(ROUTED_GATEWAY6, 64).unwrap()))?;
            }
            if let Some(ip) = ep.ip_address {
                k.links.add_route(IpNet::V4(Ipv4Net::from(ip)), &host_if, None)?;
            }
            if let Some(ip) = ep.ip_address6 {
                k.links.add_route(IpNet::V6(Ipv6Net::from(ip)), &host_if, None)?;
            }
        }
        NetworkType::Bridge => {
            k.links.set_master(&host_if, &net.interface)?;
            k.links.set_up(&host_if)?;
        }
        NetworkType::Custom => {}
    }
    Ok(())
}

fn configure_inside(
    c: ContainerKernel<'_>,
    net: &Network,
    ep: &Endpoint,
    driver: NetworkDriver,
) -> Result<()> {
    let ctr = c.links;
    let ifname = net.interface.as_str();
    if net.subnet6.is_none() {
        c.sysctl
            .set(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "1")?;
    }
    if uses_veth(net.net_type) {
        ctr.set_mac(ifname, mac_from_id(&ep.id))?;
    }
    ctr.set_up(ifname)?;
    // A vnet container has the subnet's mask, like any host on a LAN; an
    // ipnet one has only its own address and an on-link route.
    let full_mask = driver == NetworkDriver::Vnet;
    let (gw4, gw6): (Option<IpAddr>, Option<IpAddr>) = match net.net_type {
        NetworkType::Loopback => (None, Some(IpAddr::V6(ROUTED_GATEWAY6))),
        _ => (net.gateway.map(IpAddr::V4), net.gateway6.map(IpAddr::V6)),
    };
    if let (Some(ip), Some(subnet)) = (ep.ip_address, net.subnet) {
        let subnet = IpNet::V4(subnet.trunc());
        if full_mask {
            ctr.add_address(ifname, IpNet::V4(with_prefix4(ip, net.subnet.unwrap())))?;
        } else {
            ctr.add_address(ifname, IpNet::V4(Ipv4Net::from(ip)))?;
            ctr.add_route(subnet, ifname, None)?;
        }
        if net.net_type == NetworkType::Loopback {
            ctr.add_route(default_v4(), ifname, None)?;
        } else if let Some(gw) = gw4 {
            ctr.add_route(default_v4(), ifname, Some(gw))?;
        }
    }
    if let (Some(ip), Some(subnet)) = (ep.ip_address6, net.subnet6) {
        let on_link = IpNet::V6(subnet.trunc());
        if full_mask {
            ctr.add_address(ifname, IpNet::V6(with_prefix6(ip, subnet)))?;
        } else {
            ctr.add_address(ifname, IpNet::V6(Ipv6Net::from(ip)))?;
            // On a loopback network the neighbours are behind the host.
            ctr.add_route(
                on_link,
                ifname,
                (net.net_type == NetworkType::Loopback).then_some(gw6).flatten(),
            )?;
        }
        if let Some(gw) = gw6 {
            ctr.add_route(default_v6(), ifname, Some(gw))?;
        }
    }
    Ok(())
}

fn with_prefix4(ip: Ipv4Addr, subnet: Ipv4Net) -> Ipv4Net {
    Ipv4Net::new(ip, subnet.prefix_len()).expect("a subnet's prefix length is valid")
}

fn with_prefix6(ip: Ipv6Addr, subnet: Ipv6Net) -> Ipv6Net {
    Ipv6Net::new(ip, subnet.prefix_len()).expect("a subnet's prefix length is valid")
}

fn default_v4() -> IpNet {
    IpNet::V4(Ipv4Net::default())
}

fn default_v6() -> IpNet {
    IpNet::V6(Ipv6Net::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::{FakeLinks, LinkOp};
    use crate::nft::FakeFirewall;
    use crate::sysctl::FakeSysctl;
    use crate::test_fixtures::network;

    struct Fakes {
        links: FakeLinks,
        firewall: FakeFirewall,
        sysctl: FakeSysctl,
        ctr: FakeLinks,
        ctr_sysctl: FakeSysctl,
    }

    impl Fakes {
        fn new() -> Self {
            Self {
                links: FakeLinks::new(),
                firewall: FakeFirewall::new(),
                sysctl: FakeSysctl::default(),
                ctr: FakeLinks::new(),
                ctr_sysctl: FakeSysctl::default(),
            }
        }

        fn kernel(&self) -> HostKernel<'_> {
            HostKernel {
                links: &self.links,
                firewall: &self.firewall,
                sysctl: &self.sysctl,
            }
        }

        fn container(&self) -> ContainerKernel<'_> {
            ContainerKernel {
                links: &self.ctr,
                sysctl: &self.ctr_sysctl,
                netns_fd: 7,
            }
        }

        /// The container end appears in the container's namespace when the
        /// host creates the pair; the fakes are two separate models.
        fn attach(&self, net: &Network, ep: &Endpoint, driver: NetworkDriver) -> Result<()> {
            let name = net.interface.as_str();
            self.ctr.insert(
                name,
                Some(if uses_veth(net.net_type) {
                    "veth"
                } else {
                    "macvlan"
                }),
            );
            attach(self.kernel(), self.container(), net, ep, driver)
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            id: "aabbccddeeff".into(),
            network_id: "0123456789ab".into(),
            container_id: "bbbbbbbbbbbb".into(),
            epair: Some("cvaabbccddeeff".into()),
            ip_address: Some("10.1.0.2".parse().unwrap()),
            ip_address6: Some("fd00:1::2".parse().unwrap()),
            mac: None,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn names_and_macs_come_from_the_endpoint_id() {
        assert_eq!(host_ifname("aabbccddeeff"), "cvaabbccddeeff");
        assert!(is_host_ifname("cvaabbccddeeff"));
        assert!(!is_host_ifname("cv0"));
        assert!(!is_host_ifname("cell0"));
        assert!(!is_host_ifname("cvaabbccddeefg"));
        assert_eq!(mac_from_id("aabbccddeeff").to_string(), "02:aa:bb:cc:dd:ee");
    }

    #[test]
    fn bridge_network_gets_bridge_gateways_and_forwarding() {
        let f = Fakes::new();
        let n = network(NetworkType::Bridge);
        setup_network(f.kernel(), &n).unwrap();
        let ops = f.links.ops();
        assert!(ops.contains(&LinkOp::CreateBridge { name: "cell0".into() }));
        assert!(ops.contains(&LinkOp::SetMac {
            name: "cell0".into(),
            mac: "02:01:23:45:67:89".parse().unwrap()
        }));
        assert!(ops.contains(&LinkOp::AddAddress {
            name: "cell0".into(),
            addr: net("10.1.0.1/24")
        }));
        assert!(ops.contains(&LinkOp::AddAddress {
            name: "cell0".into(),
            addr: net("fd00:1::1/64")
        }));
        assert_eq!(
            f.sysctl.writes(),
            vec![
                ("net/ipv4/ip_forward".into(), "1".into()),
                ("net/ipv6/conf/all/forwarding".into(), "1".into())
            ]
        );
        assert_eq!(f.firewall.batches().len(), 1);
        // Again: the bridge exists, nothing is created twice.
        f.links.clear_ops();
        setup_network(f.kernel(), &n).unwrap();
        assert!(
            !f.links
                .ops()
                .iter()
                .any(|op| matches!(op, LinkOp::CreateBridge { .. }))
        );
        teardown_network(f.kernel(), &n).unwrap();
        assert_eq!(f.links.link_index("cell0").unwrap(), None);
    }

    #[test]
    fn restoring_a_networks_links_leaves_the_firewall_alone() {
        // At celld start restore_firewall has put every element back in
        // one batch already.
        let f = Fakes::new();
        setup_network_links(f.kernel(), &network(NetworkType::Bridge)).unwrap();
        assert!(f.links.link_index("cell0").unwrap().is_some());
        assert!(f.firewall.batches().is_empty());
    }

    #[test]
    fn loopback_subnets_are_unreachable_but_for_their_containers() {
        let f = Fakes::new();
        let n = network(NetworkType::Loopback);
        setup_network(f.kernel(), &n).unwrap();
        let ops = f.links.ops();
        assert!(ops.contains(&LinkOp::AddUnreachableRoute {
            dest: net("10.1.0.0/24")
        }));
        assert!(ops.contains(&LinkOp::AddUnreachableRoute {
            dest: net("fd00:1::/64")
        }));
        teardown_network(f.kernel(), &n).unwrap();
        assert!(f.links.ops().contains(&LinkOp::DelUnreachableRoute {
            dest: net("10.1.0.0/24")
        }));
    }

    #[test]
    fn custom_network_needs_its_parent_and_never_deletes_it() {
        let f = Fakes::new();
        let mut n = network(NetworkType::Custom);
        n.interface = "eth7".into();
        let err = setup_network(f.kernel(), &n).unwrap_err();
        assert!(err.to_string().contains("eth7"), "{err}");
        f.links.insert("eth7", None);
        setup_network(f.kernel(), &n).unwrap();
        teardown_network(f.kernel(), &n).unwrap();
        assert!(f.links.link_index("eth7").unwrap().is_some());
        assert!(f.sysctl.writes().is_empty());
    }

    #[test]
    fn loopback_attach_routes_each_address_to_its_veth() {
        let f = Fakes::new();
        let n = network(NetworkType::Loopback);
        let ep = endpoint();
        f.attach(&n, &ep, NetworkDriver::Ipnet).unwrap();
        let host = f.links.ops();
        assert_eq!(
            host[0],
            LinkOp::CreateVethPair {
                host_end: "cvaabbccddeeff".into(),
                peer_end: "cell0".into(),
                peer_netns_fd: Some(7)
            }
        );
        for (dest, dev) in [
            ("10.1.0.2/32", "cvaabbccddeeff"),
            ("fd00:1::2/128", "cvaabbccddeeff"),
        ] {
            assert!(host.contains(&LinkOp::AddRoute {
                dest: net(dest),
                dev: dev.into(),
                gateway: None
            }));
        }
        assert!(
            f.sysctl
                .writes()
                .contains(&("net/ipv4/conf/cvaabbccddeeff/proxy_arp".into(), "1".into()))
        );
        let inside = f.ctr.ops();
        assert!(inside.contains(&LinkOp::AddAddress {
            name: "cell0".into(),
            addr: net("10.1.0.2/32")
        }));
        assert!(inside.contains(&LinkOp::AddRoute {
            dest: net("0.0.0.0/0"),
            dev: "cell0".into(),
            gateway: None
        }));
        assert!(inside.contains(&LinkOp::AddRoute {
            dest: net("::/0"),
            dev: "cell0".into(),
            gateway: Some("fe80::1".parse().unwrap())
        }));
        // Elements first: anti-spoofing holds before the link exists.
        let batch = &f.firewall.batches()[0];
        assert!(batch.to_string().contains("routed_allowed4"), "{batch}");
    }

    #[test]
    fn links_of_networks_without_ipv6_have_it_off() {
        let f = Fakes::new();
        let mut n = network(NetworkType::Loopback);
        n.subnet6 = None;
        f.attach(&n, &endpoint(), NetworkDriver::Ipnet).unwrap();
        let off = |name: &str| (format!("net/ipv6/conf/{name}/disable_ipv6"), "1".to_string());
        assert!(f.sysctl.writes().contains(&off("cvaabbccddeeff")));
        assert!(f.ctr_sysctl.writes().contains(&off("cell0")));
        // With a subnet6 the routed host end keeps IPv6 (it holds fe80::1).
        let f = Fakes::new();
        f.attach(&network(NetworkType::Loopback), &endpoint(), NetworkDriver::Ipnet)
            .unwrap();
        assert!(!f.sysctl.writes().contains(&off("cvaabbccddeeff")));
        assert!(f.ctr_sysctl.writes().is_empty());
    }

    #[test]
    fn vnet_on_a_bridge_gets_the_mask_and_a_gateway() {
        let f = Fakes::new();
        let n = network(NetworkType::Bridge);
        f.links.insert("cell0", Some("bridge"));
        let ep = endpoint();
        f.attach(&n, &ep, NetworkDriver::Vnet).unwrap();
        assert!(f.links.ops().contains(&LinkOp::SetMaster {
            name: "cvaabbccddeeff".into(),
            bridge: "cell0".into()
        }));
        let inside = f.ctr.ops();
        assert_eq!(
            inside[0],
            LinkOp::SetMac {
                name: "cell0".into(),
                mac: "02:aa:bb:cc:dd:ee".parse().unwrap()
            }
        );
        assert!(inside.contains(&LinkOp::AddAddress {
            name: "cell0".into(),
            addr: net("10.1.0.2/24")
        }));
        assert!(inside.contains(&LinkOp::AddRoute {
            dest: net("0.0.0.0/0"),
            dev: "cell0".into(),
            gateway: Some("10.1.0.1".parse().unwrap())
        }));
        let batch = f.firewall.batches()[0].to_string();
        assert!(batch.contains("02:aa:bb:cc:dd:ee"), "{batch}");
    }

    #[test]
    fn ipnet_on_a_bridge_gets_a_host_address_and_an_on_link_route() {
        let f = Fakes::new();
        let n = network(NetworkType::Bridge);
        f.links.insert("cell0", Some("bridge"));
        f.attach(&n, &endpoint(), NetworkDriver::Ipnet).unwrap();
        let inside = f.ctr.ops();
        assert!(inside.contains(&LinkOp::AddAddress {
            name: "cell0".into(),
            addr: net("10.1.0.2/32")
        }));
        assert!(inside.contains(&LinkOp::AddRoute {
            dest: net("10.1.0.0/24"),
            dev: "cell0".into(),
            gateway: None
        }));
    }

    #[test]
    fn custom_attach_makes_a_macvlan_of_the_parent() {
        let f = Fakes::new();
        let mut n = network(NetworkType::Custom);
        n.interface = "eth7".into();
        f.links.insert("eth7", None);
        f.attach(&n, &endpoint(), NetworkDriver::Ipnet).unwrap();
        assert_eq!(
            f.links.ops()[0],
            LinkOp::CreateMacvlan {
                name: "eth7".into(),
                parent: "eth7".into(),
                netns_fd: Some(7)
            }
        );
        assert!(f.firewall.batches().is_empty());
        detach(f.kernel(), Some(&f.ctr), &n, &endpoint()).unwrap();
        assert!(f.ctr.ops().contains(&LinkOp::DeleteLink { name: "eth7".into() }));
        assert!(f.links.link_index("eth7").unwrap().is_some());
    }

    #[test]
    fn a_failed_attach_is_undone() {
        let f = Fakes::new();
        let n = network(NetworkType::Bridge);
        f.links.insert("cell0", Some("bridge"));
        let ep = endpoint();
        // The host side works, the container side fails at its third call.
        f.ctr.insert("cell0", Some("veth"));
        f.ctr.fail_call(3);
        let err = attach(f.kernel(), f.container(), &n, &ep, NetworkDriver::Vnet).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert_eq!(f.links.link_index("cvaabbccddeeff").unwrap(), None);
        let batches = f.firewall.batches();
        let last = batches.last().unwrap().to_string();
        assert!(last.contains("\"delete\""), "{last}");
    }

    #[test]
    fn repair_recreates_a_lost_veth_and_keeps_a_present_one() {
        let f = Fakes::new();
        let n = network(NetworkType::Bridge);
        f.links.insert("cell0", Some("bridge"));
        let ep = endpoint();
        f.ctr.insert("cell0", Some("veth"));
        repair_endpoint(f.kernel(), f.container(), &n, &ep, NetworkDriver::Vnet).unwrap();
        assert!(matches!(f.links.ops()[1], LinkOp::CreateVethPair { .. }));
        f.links.clear_ops();
        repair_endpoint(f.kernel(), f.container(), &n, &ep, NetworkDriver::Vnet).unwrap();
        assert!(
            !f.links
                .ops()
                .iter()
                .any(|op| matches!(op, LinkOp::CreateVethPair { .. }))
        );
        assert!(f.links.ops().contains(&LinkOp::SetMaster {
            name: "cvaabbccddeeff".into(),
            bridge: "cell0".into()
        }));
    }

    #[test]
    fn restore_rebuilds_tables_with_every_element_in_one_batch() {
        let fw = FakeFirewall::new();
        let n = network(NetworkType::Bridge);
        let ep = endpoint();
        restore_firewall(&fw, std::slice::from_ref(&n), &[(&n, &ep)]).unwrap();
        let batches = fw.batches();
        assert_eq!(batches.len(), 1);
        let cmds = batches[0]["nftables"].as_array().unwrap();
        assert!(cmds[1].get("delete").is_some());
        let text = batches[0].to_string();
        assert!(text.contains("allowed4") && text.contains("masq4"), "{text}");
    }

    #[test]
    fn only_the_named_links_are_removed() {
        let links = FakeLinks::new();
        links.insert("cvaabbccddeeff", Some("veth"));
        links.insert("cv0123456789ab", Some("veth"));
        links.insert("cell0", Some("bridge"));
        let stale = HashSet::from(["cvaabbccddeeff".to_string(), "cvffffffffffff".to_string()]);
        let removed = remove_links(&links, &stale).unwrap();
        assert_eq!(removed, vec!["cvaabbccddeeff".to_string()]);
        assert!(links.link_index("cv0123456789ab").unwrap().is_some());
        assert!(links.link_index("cell0").unwrap().is_some());
    }
}
