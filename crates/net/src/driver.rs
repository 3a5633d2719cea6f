//! The network-type drivers: how a network and a container's endpoint on
//! it become kernel objects, and go away again, planned as data.
//!
//! | network  | host side                                  | container side |
//! |----------|--------------------------------------------|----------------|
//! | loopback | veth end `cvID`, proxy ARP, `fe80::1`, a /32 (/128) route per address | the network's interface name, /32 (/128), default route out of it |
//! | bridge   | the bridge (gateway addresses), veth end `cvID` as its port | vnet: the subnet's mask and a default route to the gateway; ipnet: /32 and an on-link route to the subnet |
//! | custom   | nothing: the parent interface is the user's | a macvlan child of the parent, /32 and an on-link route to the subnet |
//!
//! Each type is a [`NetworkTypeDriver`] ([`network_driver`] picks it):
//! validate a network, plan its setup and teardown, plan an endpoint's
//! attach and detach. A plan ([`Plan`]) is data; [`plan::apply`] and
//! [`plan::apply_teardown`] carry it out through the kernel traits
//! ([`Links`], [`Firewall`], [`Sysctl`]), so drivers are tested on their
//! plans and the fakes, without root. How the container itself is
//! networked (`host`, `disabled`, `ipnet`, `vnet`) is a
//! [`ContainerDriver`].
//!
//! Firewall elements of an endpoint go in before its links exist:
//! anti-spoofing is in force from the first frame. Every link cell makes
//! on the host (bridges, host ends of veths) is marked with
//! [`link_alias`], so reconciliation can tell cell's links from a user's.
//! The same plans repair state after a restart of `celld` or of the
//! machine ([`repair_endpoint`], [`restore_firewall`]).
//!
//! The free functions ([`setup_network`], [`attach`], [`detach`]...) are
//! the plan-and-apply pairs the engine calls.

use crate::container_driver::{Addressing, ContainerDriver, container_driver};
use crate::error::{NetError, Result};
use crate::links::{LinkInfo, Links, check_link_name};
use crate::mac::MacAddr;
use crate::nft::Firewall;
use crate::plan::{self, Op, Plan};
use crate::ports::{self, PortForward};
use crate::ruleset;
use crate::sysctl::Sysctl;
use cell_core::model::{Endpoint, Network, NetworkDriver, NetworkType};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::{BTreeSet, HashSet};
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
/// [`crate::ContainerNet`] opens all three from a netns path at once.
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

/// The prefix of the alias ([`link_alias`]) cell gives every link it makes
/// on the host.
pub const LINK_ALIAS_PREFIX: &str = "cell:";

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

/// The mark (`IFLA_IFALIAS`) of a link cell made for the network or
/// endpoint `id`: `cell:ID`.
pub fn link_alias(id: &str) -> String {
    format!("{LINK_ALIAS_PREFIX}{id}")
}

/// The network or endpoint id a link's alias names, if the alias is one of
/// cell's marks.
pub fn alias_owner(alias: &str) -> Option<&str> {
    alias.strip_prefix(LINK_ALIAS_PREFIX).filter(|id| !id.is_empty())
}

/// The names of the links cell marked ([`link_alias`]) whose owner is not
/// in `wanted`, the ids of the networks (bridges) and endpoints (host ends
/// of veths) the store names: what reconciliation may delete. Links without cell's mark are never named, whatever they are
/// called.
pub fn unwanted_marked_links(links: &[LinkInfo], wanted: &HashSet<String>) -> Vec<String> {
    links
        .iter()
        .filter(|l| {
            l.alias
                .as_deref()
                .and_then(alias_owner)
                .is_some_and(|owner| !wanted.contains(owner))
        })
        .map(|l| l.name.clone())
        .collect()
}

/// Whether containers on networks of this type get a veth (and so a host
/// end and an `epair` in inspect).
pub fn uses_veth(net_type: NetworkType) -> bool {
    network_driver(net_type).uses_veth()
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

/// What the host holds now, as far as a network's setup plan depends on
/// it: which links exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Names of links that exist in the host's namespace.
    pub links: BTreeSet<String>,
}

impl HostFacts {
    /// Facts naming these existing links.
    pub fn with_links<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            links: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Asks the kernel what `net`'s setup depends on: whether its
    /// interface (a bridge, or a custom network's parent) exists. One
    /// lookup, not a dump of every link.
    pub fn gather(links: &dyn Links, net: &Network) -> Result<Self> {
        let present = links.link_index(&net.interface)?.is_some();
        Ok(Self::with_links(present.then(|| net.interface.clone())))
    }

    /// Whether the link `name` exists.
    pub fn has_link(&self, name: &str) -> bool {
        self.links.contains(name)
    }
}

/// What one network type does. Implementations are stateless; get one with
/// [`network_driver`]. Every plan method validates the network first.
pub trait NetworkTypeDriver: Send + Sync {
    /// The type this driver handles.
    fn net_type(&self) -> NetworkType;

    /// Whether endpoints get a veth pair (and so a host end).
    fn uses_veth(&self) -> bool;

    /// Checks that `net` fits this type: its type, its interface name, its
    /// gateways inside its subnets. No kernel access.
    fn validate(&self, net: &Network) -> Result<()> {
        check_network(self.net_type(), net)
    }

    /// Plans what the network needs on the host, given what exists
    /// (`facts`): idempotent, so it also repairs. Fails if the network is
    /// invalid or a custom network's parent is missing.
    fn plan_setup(&self, net: &Network, facts: &HostFacts) -> Result<Plan>;

    /// Plans the removal of what [`Self::plan_setup`] made (never a
    /// custom network's parent), for [`plan::apply_teardown`].
    fn plan_teardown(&self, net: &Network) -> Plan;

    /// Plans the attach of a running container's endpoint: firewall
    /// elements, then links, host side, container side. Fails if the
    /// network is invalid, `driver` may not join it
    /// ([`NetError::Refused`]), or anti-spoofing lacks a MAC.
    fn plan_attach(&self, net: &Network, ep: &Endpoint, driver: &dyn ContainerDriver) -> Result<Plan>;

    /// Plans the removal of an endpoint's elements and links (their
    /// routes go with them), for [`plan::apply_teardown`].
    fn plan_detach(&self, net: &Network, ep: &Endpoint) -> Result<Plan>;
}

/// The driver of networks of type `net_type`.
pub fn network_driver(net_type: NetworkType) -> &'static dyn NetworkTypeDriver {
    match net_type {
        NetworkType::Loopback => &LoopbackDriver,
        NetworkType::Bridge => &BridgeDriver,
        NetworkType::Custom => &CustomDriver,
    }
}

/// Loopback networks: routed layer 3, one veth per container, no bridge.
#[derive(Debug)]
pub struct LoopbackDriver;

/// Bridge networks: a Linux bridge holding the gateways, a veth per
/// container as its port.
#[derive(Debug)]
pub struct BridgeDriver;

/// Custom networks: a macvlan child of the user's interface per container.
#[derive(Debug)]
pub struct CustomDriver;

fn invalid(net: &Network, reason: String) -> NetError {
    NetError::InvalidNetwork {
        network: net.name.clone(),
        reason,
    }
}

fn check_network(net_type: NetworkType, net: &Network) -> Result<()> {
    if net.net_type != net_type {
        return Err(invalid(
            net,
            format!("a {} network given to the {net_type} driver", net.net_type),
        ));
    }
    check_link_name(&net.interface)?;
    if let (Some(subnet), Some(gw)) = (net.subnet, net.gateway)
        && !subnet.contains(&gw)
    {
        return Err(invalid(net, format!("gateway {gw} is outside subnet {subnet}")));
    }
    if let (Some(subnet), Some(gw)) = (net.subnet6, net.gateway6)
        && !subnet.contains(&gw)
    {
        return Err(invalid(net, format!("gateway {gw} is outside subnet {subnet}")));
    }
    Ok(())
}

/// The common tail of every setup: forwarding for routed types, then the
/// network's firewall elements.
fn finish_setup(plan: &mut Plan, net: &Network, forwards: bool) {
    if forwards {
        if net.subnet.is_some() {
            plan.host(sysctl("net/ipv4/ip_forward", "1"));
        }
        if net.subnet6.is_some() {
            plan.host(sysctl("net/ipv6/conf/all/forwarding", "1"));
        }
    }
    let elements = ruleset::network_elements(net);
    if !elements.is_empty() {
        plan.host(Op::AddElements(elements));
    }
}

/// The first step of every teardown: the network's firewall elements.
fn start_teardown(net: &Network) -> Plan {
    let mut plan = Plan::new();
    let elements = ruleset::network_elements(net);
    if !elements.is_empty() {
        plan.host(Op::DeleteElements(elements));
    }
    plan
}

/// The first step of every attach: the endpoint's firewall elements.
fn start_attach(net: &Network, ep: &Endpoint, driver: &dyn ContainerDriver) -> Result<Plan> {
    driver.check_join(net)?;
    let mut plan = Plan::new();
    let elements = endpoint_elements(net, ep)?;
    if !elements.is_empty() {
        plan.host(Op::AddElements(elements));
    }
    Ok(plan)
}

/// A veth endpoint's detach: its elements, then its host end (deleting
/// one end of a veth deletes both, and the routes via it).
fn plan_veth_detach(net: &Network, ep: &Endpoint) -> Result<Plan> {
    let mut plan = Plan::new();
    let elements = endpoint_elements(net, ep)?;
    if !elements.is_empty() {
        plan.host(Op::DeleteElements(elements));
    }
    plan.host(Op::DeleteLink {
        name: host_ifname(&ep.id),
    });
    Ok(plan)
}

/// Creates the endpoint's veth with its container end already inside the
/// container's namespace, and marks the host end as cell's.
fn create_veth(plan: &mut Plan, net: &Network, ep: &Endpoint) {
    let host_if = host_ifname(&ep.id);
    plan.host(Op::CreateVethPair {
        host_end: host_if.clone(),
        container_end: net.interface.clone(),
    });
    plan.host(Op::SetAlias {
        name: host_if,
        alias: link_alias(&ep.id),
    });
}

fn sysctl(key: &str, value: &str) -> Op {
    Op::Sysctl {
        key: key.to_string(),
        value: value.to_string(),
    }
}

/// Lets the host's own clients of published ports on 127.0.0.1 reach
/// containers behind `ifname`: without it the kernel refuses to route
/// a loopback source out of (and its replies in from) any other link.
/// A fixed rule keeps other traffic to 127.0.0.0/8 out (see
/// [`crate::ports`]).
fn route_localnet(ifname: &str) -> Op {
    sysctl(&format!("net/ipv4/conf/{ifname}/route_localnet"), "1")
}

/// Lets replies to the host's own `[::1]` clients of published ports in
/// through `ifname`: IPv6 has no `route_localnet`, and a packet to `::1`
/// is routed only to the link it arrived on; a `local ::1` route on
/// `ifname` makes it the host's. (Packets sent to `::1` by a container are
/// dropped before routing, RFC 4291 2.5.3; only un-NATed replies get
/// here.)
fn loopback6(plan: &mut Plan, ifname: &str) {
    plan.host(Op::AddLocalRoute {
        dest: IpNet::V6(Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).expect("128 is a valid prefix")),
        dev: ifname.to_string(),
    });
}

fn ipv6_off(ifname: &str) -> Op {
    sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "1")
}

fn subnets(net: &Network) -> impl Iterator<Item = IpNet> {
    let v4 = net.subnet.map(|s| IpNet::V4(s.trunc()));
    let v6 = net.subnet6.map(|s| IpNet::V6(s.trunc()));
    v4.into_iter().chain(v6)
}

impl NetworkTypeDriver for LoopbackDriver {
    fn net_type(&self) -> NetworkType {
        NetworkType::Loopback
    }

    fn uses_veth(&self) -> bool {
        true
    }

    fn plan_setup(&self, net: &Network, _: &HostFacts) -> Result<Plan> {
        self.validate(net)?;
        let mut plan = Plan::new();
        // Each container's address is routed to its veth; an address of
        // the subnet that no container holds must not leave by the
        // default route with a private source.
        for subnet in subnets(net) {
            plan.host(Op::AddUnreachableRoute { dest: subnet });
        }
        finish_setup(&mut plan, net, true);
        Ok(plan)
    }

    fn plan_teardown(&self, net: &Network) -> Plan {
        let mut plan = start_teardown(net);
        for subnet in subnets(net) {
            plan.host(Op::DelUnreachableRoute { dest: subnet });
        }
        plan
    }

    fn plan_attach(&self, net: &Network, ep: &Endpoint, driver: &dyn ContainerDriver) -> Result<Plan> {
        self.validate(net)?;
        let mut plan = start_attach(net, ep, driver)?;
        create_veth(&mut plan, net, ep);
        let host_if = host_ifname(&ep.id);
        // Without IPv6 (no subnet6, or a container of stack ipv4) the new
        // link sends no duplicate address probes and multicast reports;
        // with it, the host end holds fe80::1.
        if ep.ip_address6.is_none() {
            plan.host(ipv6_off(&host_if));
        }
        if ep.ip_address.is_some() {
            // The container sends everything to the link; the host end
            // answers ARP for every address it can route, at once.
            plan.host(sysctl(&format!("net/ipv4/conf/{host_if}/proxy_arp"), "1"));
            plan.host(sysctl(&format!("net/ipv4/neigh/{host_if}/proxy_delay"), "0"));
            plan.host(route_localnet(&host_if));
        }
        plan.host(Op::SetUp {
            name: host_if.clone(),
        });
        if ep.ip_address6.is_some() {
            plan.host(Op::AddAddress {
                name: host_if.clone(),
                addr: IpNet::V6(Ipv6Net::new(ROUTED_GATEWAY6, 64).expect("64 is a valid prefix")),
            });
        }
        if let Some(ip) = ep.ip_address {
            plan.host(Op::AddRoute {
                dest: IpNet::V4(Ipv4Net::from(ip)),
                dev: host_if.clone(),
                gateway: None,
            });
        }
        if let Some(ip) = ep.ip_address6 {
            plan.host(Op::AddRoute {
                dest: IpNet::V6(Ipv6Net::from(ip)),
                dev: host_if.clone(),
                gateway: None,
            });
            loopback6(&mut plan, &host_if);
        }
        configure_inside(&mut plan, net, ep, driver.addressing());
        Ok(plan)
    }

    fn plan_detach(&self, net: &Network, ep: &Endpoint) -> Result<Plan> {
        plan_veth_detach(net, ep)
    }
}

impl NetworkTypeDriver for BridgeDriver {
    fn net_type(&self) -> NetworkType {
        NetworkType::Bridge
    }

    fn uses_veth(&self) -> bool {
        true
    }

    fn plan_setup(&self, net: &Network, facts: &HostFacts) -> Result<Plan> {
        self.validate(net)?;
        let mut plan = Plan::new();
        let bridge = &net.interface;
        if !facts.has_link(bridge) {
            plan.host(Op::CreateBridge { name: bridge.clone() });
        }
        plan.host(Op::SetAlias {
            name: bridge.clone(),
            alias: link_alias(&net.id),
        });
        // A bridge without an address of its own takes the lowest of its
        // ports' and changes it as ports come and go, cutting the
        // containers off their gateway until their ARP entries expire.
        plan.host(Op::SetMac {
            name: bridge.clone(),
            mac: mac_from_id(&net.id),
        });
        if let (Some(subnet), Some(gw)) = (net.subnet, net.gateway) {
            plan.host(Op::AddAddress {
                name: bridge.clone(),
                addr: IpNet::V4(with_prefix4(gw, subnet)),
            });
        }
        if let (Some(subnet), Some(gw)) = (net.subnet6, net.gateway6) {
            plan.host(Op::AddAddress {
                name: bridge.clone(),
                addr: IpNet::V6(with_prefix6(gw, subnet)),
            });
        }
        plan.host(Op::SetUp { name: bridge.clone() });
        if net.subnet.is_some() {
            plan.host(route_localnet(bridge));
        }
        if net.subnet6.is_some() {
            loopback6(&mut plan, bridge);
            plan.host(Op::AddLoopbackRedirect6 { link: bridge.clone() });
        }
        finish_setup(&mut plan, net, true);
        Ok(plan)
    }

    fn plan_teardown(&self, net: &Network) -> Plan {
        let mut plan = start_teardown(net);
        if net.subnet6.is_some() {
            plan.host(Op::DelLoopbackRedirect6 {
                link: net.interface.clone(),
            });
        }
        plan.host(Op::DeleteLink {
            name: net.interface.clone(),
        });
        plan
    }

    fn plan_attach(&self, net: &Network, ep: &Endpoint, driver: &dyn ContainerDriver) -> Result<Plan> {
        self.validate(net)?;
        let mut plan = start_attach(net, ep, driver)?;
        create_veth(&mut plan, net, ep);
        let host_if = host_ifname(&ep.id);
        // A bridge port needs no address of its own; without IPv6 it
        // sends no duplicate address probes and multicast reports, which
        // the bridge would flood to every other port (the cost of an
        // attach would grow with their count).
        plan.host(ipv6_off(&host_if));
        plan.host(Op::SetMaster {
            name: host_if.clone(),
            bridge: net.interface.clone(),
        });
        // A container reaching its own published port: with br_netfilter
        // the DNATed connection is bridged back to the port it came from.
        // (The kernel's enhanced DAD tells the container's own reflected
        // neighbour solicitations from a duplicate's.)
        plan.host(Op::SetHairpin {
            name: host_if.clone(),
        });
        plan.host(Op::SetUp { name: host_if });
        configure_inside(&mut plan, net, ep, driver.addressing());
        Ok(plan)
    }

    fn plan_detach(&self, net: &Network, ep: &Endpoint) -> Result<Plan> {
        plan_veth_detach(net, ep)
    }
}

impl NetworkTypeDriver for CustomDriver {
    fn net_type(&self) -> NetworkType {
        NetworkType::Custom
    }

    fn uses_veth(&self) -> bool {
        false
    }

    fn plan_setup(&self, net: &Network, facts: &HostFacts) -> Result<Plan> {
        self.validate(net)?;
        if !facts.has_link(&net.interface) {
            return Err(NetError::LinkNotFound {
                name: net.interface.clone(),
            });
        }
        let mut plan = Plan::new();
        // The parent is the user's: its forwarding is not cell's to set.
        finish_setup(&mut plan, net, false);
        Ok(plan)
    }

    fn plan_teardown(&self, net: &Network) -> Plan {
        start_teardown(net)
    }

    fn plan_attach(&self, net: &Network, ep: &Endpoint, driver: &dyn ContainerDriver) -> Result<Plan> {
        self.validate(net)?;
        let mut plan = start_attach(net, ep, driver)?;
        // The child carries the parent's name inside, as an alias on em0
        // does on FreeBSD.
        plan.host(Op::CreateMacvlan {
            name: net.interface.clone(),
            parent: net.interface.clone(),
        });
        configure_inside(&mut plan, net, ep, driver.addressing());
        Ok(plan)
    }

    fn plan_detach(&self, net: &Network, ep: &Endpoint) -> Result<Plan> {
        let mut plan = Plan::new();
        let elements = endpoint_elements(net, ep)?;
        if !elements.is_empty() {
            plan.host(Op::DeleteElements(elements));
        }
        // The macvlan has no host end; it dies with the namespace anyway.
        plan.container(Op::DeleteLink {
            name: net.interface.clone(),
        });
        Ok(plan)
    }
}

/// The container side of an attach: the interface's MAC (veths), up, its
/// addresses and routes as `addressing` wants.
fn configure_inside(plan: &mut Plan, net: &Network, ep: &Endpoint, addressing: Addressing) {
    let ifname = net.interface.as_str();
    let routed = net.net_type == NetworkType::Loopback;
    // An endpoint without IPv6 (no subnet6, or a container of stack ipv4)
    // gets no link-local address either.
    if ep.ip_address6.is_none() {
        plan.container(ipv6_off(ifname));
    }
    if net.net_type != NetworkType::Custom {
        plan.container(Op::SetMac {
            name: ifname.into(),
            mac: mac_from_id(&ep.id),
        });
    }
    plan.container(Op::SetUp { name: ifname.into() });
    let full_mask = addressing == Addressing::SubnetMask;
    let (gw4, gw6): (Option<IpAddr>, Option<IpAddr>) = if routed {
        (None, Some(IpAddr::V6(ROUTED_GATEWAY6)))
    } else {
        (net.gateway.map(IpAddr::V4), net.gateway6.map(IpAddr::V6))
    };
    let address = |addr| Op::AddAddress {
        name: ifname.into(),
        addr,
    };
    let route = |dest, gateway| Op::AddRoute {
        dest,
        dev: ifname.into(),
        gateway,
    };
    if let (Some(ip), Some(subnet)) = (ep.ip_address, net.subnet) {
        if full_mask {
            plan.container(address(IpNet::V4(with_prefix4(ip, subnet))));
        } else {
            plan.container(address(IpNet::V4(Ipv4Net::from(ip))));
            plan.container(route(IpNet::V4(subnet.trunc()), None));
        }
        if routed {
            plan.container(route(default_v4(), None));
        } else if let Some(gw) = gw4 {
            plan.container(route(default_v4(), Some(gw)));
        }
    }
    if let (Some(ip), Some(subnet)) = (ep.ip_address6, net.subnet6) {
        if full_mask {
            plan.container(address(IpNet::V6(with_prefix6(ip, subnet))));
        } else {
            plan.container(address(IpNet::V6(Ipv6Net::from(ip))));
            // On a loopback network the neighbours are behind the host.
            plan.container(route(IpNet::V6(subnet.trunc()), routed.then_some(gw6).flatten()));
        }
        if let Some(gw) = gw6 {
            plan.container(route(default_v6(), Some(gw)));
        }
    }
}

/// Creates what a network needs on the host: its links and routes (see
/// [`setup_network_links`]) and its firewall elements. Idempotent. On
/// failure what it made is undone.
pub fn setup_network(k: HostKernel<'_>, net: &Network) -> Result<()> {
    let driver = network_driver(net.net_type);
    let plan = driver.plan_setup(net, &HostFacts::gather(k.links, net)?)?;
    plan::apply(&plan, k, None)
}

/// Creates (or repairs) what a network needs on the host besides its
/// firewall elements: forwarding, the bridge with its mark, MAC and
/// gateway addresses, the unreachable routes of a loopback network.
/// Idempotent. A custom network's parent interface must exist. At `celld`
/// start this is all a network needs, as [`restore_firewall`] puts every
/// element back.
pub fn setup_network_links(k: HostKernel<'_>, net: &Network) -> Result<()> {
    let driver = network_driver(net.net_type);
    let plan = driver
        .plan_setup(net, &HostFacts::gather(k.links, net)?)?
        .without(|s| matches!(s.op, Op::AddElements(_)));
    plan::apply(&plan, k, None)
}

/// Removes what [`setup_network`] made: the firewall elements and the
/// bridge (never a custom network's parent). Idempotent; keeps going past
/// failures and reports them all.
pub fn teardown_network(k: HostKernel<'_>, net: &Network) -> Result<()> {
    let plan = network_driver(net.net_type).plan_teardown(net);
    plan::apply_teardown(&plan, k, None).or_else(|errors| errors.into_result())
}

/// Swaps the firewall elements of a network that changed (`public`'s NAT
/// interface follows the host's default route) from those of `old` to
/// those of `new`: the ones only `old` has go, the ones only `new` has
/// come, and the others stay, so no packet of the network's meets a gap.
/// On failure what was done is undone.
pub fn replace_network_elements(k: HostKernel<'_>, old: &Network, new: &Network) -> Result<()> {
    let before = ruleset::network_elements(old);
    let after = ruleset::network_elements(new);
    let gone: Vec<_> = before.iter().filter(|e| !after.contains(e)).cloned().collect();
    let come: Vec<_> = after.iter().filter(|e| !before.contains(e)).cloned().collect();
    let mut plan = Plan::new();
    if !gone.is_empty() {
        plan.host(Op::DeleteElements(gone));
    }
    if !come.is_empty() {
        plan.host(Op::AddElements(come));
    }
    plan::apply(&plan, k, None)
}

/// Attaches a running container to a network. On failure everything done
/// is undone; a failing undo is reported with the original error.
pub fn attach(
    k: HostKernel<'_>,
    c: ContainerKernel<'_>,
    net: &Network,
    ep: &Endpoint,
    driver: NetworkDriver,
) -> Result<()> {
    attach_with_ports(k, c, net, ep, driver, &[])
}

/// [`attach`], with the endpoint's published ports (see [`crate::ports`]):
/// their elements go in the same transaction as the endpoint's others.
/// `forwards` are those that target this endpoint
/// ([`crate::ports::forwards_of`]).
pub fn attach_with_ports(
    k: HostKernel<'_>,
    c: ContainerKernel<'_>,
    net: &Network,
    ep: &Endpoint,
    driver: NetworkDriver,
    forwards: &[PortForward],
) -> Result<()> {
    let plan = network_driver(net.net_type).plan_attach(net, ep, container_driver(driver))?;
    let plan = ports::with_port_elements(plan, forwards, true)?;
    let (applied, clock) = plan::apply_timed(&plan, k, Some(c));
    tracing::debug!(endpoint = %ep.id, network = %net.name, ports = forwards.len(), steps = %clock.attach_summary(), "attach");
    applied
}

/// [`detach`], with the endpoint's published ports: their elements are
/// deleted in the same transaction as its others. Idempotent.
pub fn detach_with_ports(
    k: HostKernel<'_>,
    ctr: Option<&dyn Links>,
    net: &Network,
    ep: &Endpoint,
    forwards: &[PortForward],
) -> Result<()> {
    let plan = network_driver(net.net_type).plan_detach(net, ep)?;
    let plan = ports::with_port_elements(plan, forwards, false)?;
    plan::apply_teardown(&plan, k, ctr).or_else(|errors| errors.into_result())
}

/// Detaches an endpoint: its firewall elements and its links (with their
/// routes). `ctr` is the container's namespace if it still exists; it is
/// needed only for a custom network's macvlan, which has no host end.
/// Idempotent; keeps going past failures and reports them all.
pub fn detach(k: HostKernel<'_>, ctr: Option<&dyn Links>, net: &Network, ep: &Endpoint) -> Result<()> {
    detach_with_ports(k, ctr, net, ep, &[])
}

/// Brings an attached endpoint of a running container back to what
/// [`attach`] made, with the same plan: after a restart of `celld` only
/// missing pieces are added; after the host lost the links (a deleted
/// bridge drops nothing, but a deleted veth loses both ends), they are
/// made again. Firewall elements are left to [`restore_firewall`].
pub fn repair_endpoint(
    k: HostKernel<'_>,
    c: ContainerKernel<'_>,
    net: &Network,
    ep: &Endpoint,
    driver: NetworkDriver,
) -> Result<()> {
    let net_driver = network_driver(net.net_type);
    let present = if net_driver.uses_veth() {
        k.links.link_index(&host_ifname(&ep.id))?.is_some()
    } else {
        c.links.link_index(&net.interface)?.is_some()
    };
    let plan = net_driver
        .plan_attach(net, ep, container_driver(driver))?
        .without(|s| {
            matches!(s.op, Op::AddElements(_))
                || (present && matches!(s.op, Op::CreateVethPair { .. } | Op::CreateMacvlan { .. }))
        });
    plan::apply(&plan, k, Some(c))
}

/// Rebuilds cell's tables in one transaction: the tables are deleted and
/// made again with every element `networks` and `endpoints` need (and
/// `netdev cell`, whose per-bridge chains [`setup_network_links`] makes
/// again, is deleted). Elements
/// of things that no longer exist vanish with the old tables; traffic of
/// the others is never unfiltered, as the kernel swaps the whole batch at
/// once.
pub fn restore_firewall(
    firewall: &dyn Firewall,
    networks: &[Network],
    endpoints: &[(&Network, &Endpoint)],
) -> Result<()> {
    restore_firewall_with_ports(firewall, networks, endpoints, &[])
}

/// [`restore_firewall`], with the published ports of running containers
/// (`forwards`) in the same transaction.
pub fn restore_firewall_with_ports(
    firewall: &dyn Firewall,
    networks: &[Network],
    endpoints: &[(&Network, &Endpoint)],
    forwards: &[PortForward],
) -> Result<()> {
    let mut elements = ports::port_elements(forwards)?;
    for net in networks {
        elements.extend(ruleset::network_elements(net));
    }
    for (net, ep) in endpoints {
        elements.extend(endpoint_elements(net, ep)?);
    }
    let mut cmds = ruleset::delete_table_commands();
    // The bridges' [::1] chains go too: setup_network_links, which
    // follows at celld's start, makes those of the networks that exist.
    let netdev = serde_json::json!({"family": ruleset::FAMILY_NETDEV, "name": ruleset::TABLE});
    cmds.push(serde_json::json!({"add": {"table": netdev.clone()}}));
    cmds.push(serde_json::json!({"delete": {"table": netdev}}));
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
#[path = "driver_tests.rs"]
mod tests;
