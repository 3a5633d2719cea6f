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
        // Without IPv6 the new link sends no duplicate address probes and
        // multicast reports; with it, the host end holds fe80::1.
        if net.subnet6.is_none() {
            plan.host(ipv6_off(&host_if));
        }
        if ep.ip_address.is_some() {
            // The container sends everything to the link; the host end
            // answers ARP for every address it can route, at once.
            plan.host(sysctl(&format!("net/ipv4/conf/{host_if}/proxy_arp"), "1"));
            plan.host(sysctl(&format!("net/ipv4/neigh/{host_if}/proxy_delay"), "0"));
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
                dev: host_if,
                gateway: None,
            });
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
        finish_setup(&mut plan, net, true);
        Ok(plan)
    }

    fn plan_teardown(&self, net: &Network) -> Plan {
        let mut plan = start_teardown(net);
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
    if net.subnet6.is_none() {
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

/// Attaches a running container to a network. On failure everything done
/// is undone; a failing undo is reported with the original error.
pub fn attach(
    k: HostKernel<'_>,
    c: ContainerKernel<'_>,
    net: &Network,
    ep: &Endpoint,
    driver: NetworkDriver,
) -> Result<()> {
    let plan = network_driver(net.net_type).plan_attach(net, ep, container_driver(driver))?;
    let (applied, clock) = plan::apply_timed(&plan, k, Some(c));
    tracing::debug!(endpoint = %ep.id, network = %net.name, steps = %clock.attach_summary(), "attach");
    applied
}

/// Detaches an endpoint: its firewall elements and its links (with their
/// routes). `ctr` is the container's namespace if it still exists; it is
/// needed only for a custom network's macvlan, which has no host end.
/// Idempotent; keeps going past failures and reports them all.
pub fn detach(k: HostKernel<'_>, ctr: Option<&dyn Links>, net: &Network, ep: &Endpoint) -> Result<()> {
    let plan = network_driver(net.net_type).plan_detach(net, ep)?;
    plan::apply_teardown(&plan, k, ctr).or_else(|errors| errors.into_result())
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

    // Plans as data: no kernel at all.

    fn plan_of(t: NetworkType, kind: NetworkDriver) -> Result<Plan> {
        let mut n = network(t);
        if t == NetworkType::Custom {
            n.interface = "eth7".into();
        }
        network_driver(t).plan_attach(&n, &endpoint(), container_driver(kind))
    }

    fn v4_only(t: NetworkType) -> Network {
        let mut n = network(t);
        n.subnet6 = None;
        n.gateway6 = None;
        n
    }

    fn v4_endpoint() -> Endpoint {
        Endpoint {
            ip_address6: None,
            ..endpoint()
        }
    }

    fn host_op(op: Op) -> plan::Step {
        plan::Step {
            place: plan::Place::Host,
            op,
        }
    }

    fn inside_op(op: Op) -> plan::Step {
        plan::Step {
            place: plan::Place::Container,
            op,
        }
    }

    #[test]
    fn vnet_on_a_bridge_plans_exactly_this() {
        let n = v4_only(NetworkType::Bridge);
        let ep = v4_endpoint();
        let plan = BridgeDriver
            .plan_attach(&n, &ep, container_driver(NetworkDriver::Vnet))
            .unwrap();
        let elements = endpoint_elements(&n, &ep).unwrap();
        let s = |x: &str| x.to_string();
        assert_eq!(
            plan.steps,
            vec![
                host_op(Op::AddElements(elements)),
                host_op(Op::CreateVethPair {
                    host_end: s("cvaabbccddeeff"),
                    container_end: s("cell0")
                }),
                host_op(Op::SetAlias {
                    name: s("cvaabbccddeeff"),
                    alias: s("cell:aabbccddeeff")
                }),
                host_op(sysctl("net/ipv6/conf/cvaabbccddeeff/disable_ipv6", "1")),
                host_op(Op::SetMaster {
                    name: s("cvaabbccddeeff"),
                    bridge: s("cell0")
                }),
                host_op(Op::SetUp {
                    name: s("cvaabbccddeeff")
                }),
                inside_op(sysctl("net/ipv6/conf/cell0/disable_ipv6", "1")),
                inside_op(Op::SetMac {
                    name: s("cell0"),
                    mac: "02:aa:bb:cc:dd:ee".parse().unwrap()
                }),
                inside_op(Op::SetUp { name: s("cell0") }),
                inside_op(Op::AddAddress {
                    name: s("cell0"),
                    addr: net("10.1.0.2/24")
                }),
                inside_op(Op::AddRoute {
                    dest: net("0.0.0.0/0"),
                    dev: s("cell0"),
                    gateway: Some("10.1.0.1".parse().unwrap())
                }),
            ]
        );
    }

    #[test]
    fn ipnet_plans_host_addresses_on_every_type() {
        for t in [NetworkType::Loopback, NetworkType::Bridge, NetworkType::Custom] {
            let plan = plan_of(t, NetworkDriver::Ipnet).unwrap();
            let inside = plan.ops_at(plan::Place::Container);
            let ifname = if t == NetworkType::Custom { "eth7" } else { "cell0" };
            assert!(
                inside.contains(&&Op::AddAddress {
                    name: ifname.into(),
                    addr: net("10.1.0.2/32")
                }),
                "{t}: {inside:?}"
            );
            assert!(
                inside.contains(&&Op::AddAddress {
                    name: ifname.into(),
                    addr: net("fd00:1::2/128")
                }),
                "{t}"
            );
            // Never the subnet's mask.
            assert!(
                !inside
                    .iter()
                    .any(|op| matches!(op, Op::AddAddress { addr, .. } if addr.prefix_len() == 24)),
                "{t}"
            );
            let host = plan.ops_at(plan::Place::Host);
            let creates: Vec<_> = host
                .iter()
                .filter(|op| matches!(op, Op::CreateVethPair { .. } | Op::CreateMacvlan { .. }))
                .collect();
            assert_eq!(creates.len(), 1, "{t}: one link per endpoint");
            // Only cell's own host-side links are marked; a macvlan has none.
            let marked = host.iter().any(|op| matches!(op, Op::SetAlias { .. }));
            assert_eq!(marked, t != NetworkType::Custom, "{t}");
        }
    }

    #[test]
    fn loopback_attach_plans_routes_to_the_veth_and_a_default_route_inside() {
        let plan = plan_of(NetworkType::Loopback, NetworkDriver::Ipnet).unwrap();
        let host = plan.ops_at(plan::Place::Host);
        for dest in ["10.1.0.2/32", "fd00:1::2/128"] {
            assert!(host.contains(&&Op::AddRoute {
                dest: net(dest),
                dev: "cvaabbccddeeff".into(),
                gateway: None
            }));
        }
        assert!(host.contains(&&sysctl("net/ipv4/conf/cvaabbccddeeff/proxy_arp", "1")));
        assert!(!host.iter().any(|op| matches!(op, Op::SetMaster { .. })));
        let inside = plan.ops_at(plan::Place::Container);
        assert!(inside.contains(&&Op::AddRoute {
            dest: net("0.0.0.0/0"),
            dev: "cell0".into(),
            gateway: None
        }));
    }

    #[test]
    fn drivers_that_may_not_join_get_no_plan() {
        let refusals = [
            (
                NetworkType::Loopback,
                NetworkDriver::Vnet,
                "can't connect to loopback networks",
            ),
            (
                NetworkType::Custom,
                NetworkDriver::Vnet,
                "can't connect to custom networks",
            ),
            (
                NetworkType::Bridge,
                NetworkDriver::Host,
                "'host' network driver cannot join networks",
            ),
            (
                NetworkType::Bridge,
                NetworkDriver::Disabled,
                "'disabled' network driver cannot join",
            ),
            (NetworkType::Loopback, NetworkDriver::Host, "cannot join networks"),
        ];
        for (t, kind, message) in refusals {
            let err = plan_of(t, kind).unwrap_err();
            assert!(matches!(err, NetError::Refused(_)), "{t} {kind}: {err:?}");
            assert!(err.to_string().contains(message), "{t} {kind}: {err}");
        }
        // Positive control: the same networks take an ipnet container.
        for t in [NetworkType::Loopback, NetworkType::Custom, NetworkType::Bridge] {
            plan_of(t, NetworkDriver::Ipnet).unwrap();
        }
    }

    #[test]
    fn setup_plans_follow_what_the_host_holds() {
        let bridge = network(NetworkType::Bridge);
        let fresh = BridgeDriver.plan_setup(&bridge, &HostFacts::default()).unwrap();
        assert_eq!(fresh.steps[0], host_op(Op::CreateBridge { name: "cell0".into() }));
        assert!(fresh.steps.contains(&host_op(Op::SetAlias {
            name: "cell0".into(),
            alias: "cell:0123456789ab".into()
        })));
        assert!(matches!(fresh.steps.last().unwrap().op, Op::AddElements(_)));
        let there = BridgeDriver
            .plan_setup(&bridge, &HostFacts::with_links(["cell0"]))
            .unwrap();
        assert_eq!(there.steps, fresh.steps[1..].to_vec());
        assert!(!fresh.touches_container());

        let mut custom = network(NetworkType::Custom);
        custom.interface = "eth7".into();
        let err = CustomDriver
            .plan_setup(&custom, &HostFacts::default())
            .unwrap_err();
        assert!(err.is_not_found() && err.to_string().contains("eth7"), "{err}");
        let plan = CustomDriver
            .plan_setup(&custom, &HostFacts::with_links(["eth7"]))
            .unwrap();
        assert!(plan.steps.iter().all(|s| matches!(s.op, Op::AddElements(_))));
    }

    #[test]
    fn teardown_plans_remove_what_setup_made_and_never_a_parent() {
        let bridge = network(NetworkType::Bridge);
        let plan = BridgeDriver.plan_teardown(&bridge);
        assert!(matches!(plan.steps[0].op, Op::DeleteElements(_)));
        assert_eq!(
            plan.steps.last().unwrap().op,
            Op::DeleteLink { name: "cell0".into() }
        );
        let lo = LoopbackDriver.plan_teardown(&network(NetworkType::Loopback));
        assert!(lo.steps.contains(&host_op(Op::DelUnreachableRoute {
            dest: net("fd00:1::/64")
        })));
        let custom = CustomDriver.plan_teardown(&network(NetworkType::Custom));
        assert!(!custom.steps.iter().any(|s| matches!(s.op, Op::DeleteLink { .. })));
        // Detach of a macvlan happens inside; of a veth, on the host.
        let ep = endpoint();
        let detach = CustomDriver
            .plan_detach(&network(NetworkType::Custom), &ep)
            .unwrap();
        assert_eq!(
            detach.ops_at(plan::Place::Container),
            vec![&Op::DeleteLink { name: "cell0".into() }]
        );
        let detach = BridgeDriver.plan_detach(&bridge, &ep).unwrap();
        assert_eq!(
            detach.steps.last().unwrap(),
            &host_op(Op::DeleteLink {
                name: "cvaabbccddeeff".into()
            })
        );
    }

    #[test]
    fn validation_refuses_networks_that_do_not_fit_their_driver() {
        let bridge = network(NetworkType::Bridge);
        BridgeDriver.validate(&bridge).unwrap();
        let err = LoopbackDriver.validate(&bridge).unwrap_err();
        assert!(
            err.to_string()
                .contains("a bridge network given to the loopback driver"),
            "{err}"
        );
        let mut outside = bridge.clone();
        outside.gateway = Some("10.9.0.1".parse().unwrap());
        let err = BridgeDriver
            .plan_setup(&outside, &HostFacts::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid network web: gateway 10.9.0.1 is outside subnet 10.1.0.0/24"
        );
        let mut long = bridge;
        long.interface = "a-name-too-long-for-linux".into();
        assert!(matches!(
            BridgeDriver.validate(&long),
            Err(NetError::InvalidLinkName { .. })
        ));
    }

    #[test]
    fn only_marked_links_of_unknown_owners_are_unwanted() {
        let links = FakeLinks::new();
        links.insert("cvaabbccddeeff", Some("veth"));
        links.insert("cv0123456789ab", Some("veth"));
        links.insert("cvffffffffffff", Some("veth"));
        links.insert("cell0", Some("bridge"));
        links.set_alias("cvaabbccddeeff", "cell:aabbccddeeff").unwrap();
        links.set_alias("cv0123456789ab", "cell:0123456789ab").unwrap();
        links.set_alias("cell0", "cell:0123456789ab").unwrap();
        // Named like one of cell's veths, but not marked: a user's.
        links.set_alias("cvffffffffffff", "mine").unwrap();
        let wanted = HashSet::from(["0123456789ab".to_string()]);
        let all = links.list_links().unwrap();
        assert_eq!(
            unwanted_marked_links(&all, &wanted),
            vec!["cvaabbccddeeff".to_string()]
        );
        // Positive control: with nothing wanted, every marked link goes.
        let mut none = unwanted_marked_links(&all, &HashSet::new());
        none.sort();
        assert_eq!(none, vec!["cell0", "cv0123456789ab", "cvaabbccddeeff"]);
    }

    #[test]
    fn aliases_name_their_owner() {
        assert_eq!(link_alias("0123456789ab"), "cell:0123456789ab");
        assert_eq!(alias_owner("cell:0123456789ab"), Some("0123456789ab"));
        assert_eq!(alias_owner("cell:"), None);
        assert_eq!(alias_owner("uplink"), None);
    }

    // Applying plans on the fakes, failures injected.

    /// Which fake fails.
    #[derive(Debug, Clone, Copy)]
    enum Failing {
        HostLinks,
        HostSysctl,
        Firewall,
        ContainerLinks,
        ContainerSysctl,
    }

    impl Fakes {
        fn fail(&self, which: Failing, n: usize) {
            match which {
                Failing::HostLinks => self.links.fail_call(n),
                Failing::HostSysctl => self.sysctl.fail_call(n),
                Failing::Firewall => self.firewall.fail_call(n),
                Failing::ContainerLinks => self.ctr.fail_call(n),
                Failing::ContainerSysctl => self.ctr_sysctl.fail_call(n),
            }
        }

        fn calls(&self, which: Failing) -> usize {
            match which {
                Failing::HostLinks => self.links.ops().len(),
                Failing::HostSysctl => self.sysctl.writes().len(),
                Failing::Firewall => self.firewall.batches().len(),
                Failing::ContainerLinks => self.ctr.ops().len(),
                Failing::ContainerSysctl => self.ctr_sysctl.writes().len(),
            }
        }

        /// A host holding the network's interface and a container holding
        /// the end of its link, as the kernel would after the create.
        fn ready(t: NetworkType) -> (Self, Network) {
            let f = Self::new();
            let mut n = v4_only(t);
            if t == NetworkType::Custom {
                n.interface = "eth7".into();
                f.links.insert("eth7", None);
            } else if t == NetworkType::Bridge {
                f.links.insert("cell0", Some("bridge"));
            }
            let kind = if uses_veth(t) { "veth" } else { "macvlan" };
            f.ctr.insert(&n.interface, Some(kind));
            (f, n)
        }
    }

    /// Whether the firewall holds none of what the batches added: every
    /// batch that added elements was followed by one deleting them.
    fn firewall_is_clean(fw: &FakeFirewall) -> bool {
        let batches = fw.batches();
        let adds = batches
            .iter()
            .filter(|b| !b.to_string().contains("\"delete\""))
            .count();
        let deletes = batches
            .iter()
            .filter(|b| b.to_string().contains("\"delete\""))
            .count();
        adds == deletes
    }

    #[test]
    fn an_attach_failing_at_any_call_leaves_nothing() {
        let combos = [
            (NetworkType::Loopback, NetworkDriver::Ipnet),
            (NetworkType::Bridge, NetworkDriver::Ipnet),
            (NetworkType::Bridge, NetworkDriver::Vnet),
            (NetworkType::Custom, NetworkDriver::Ipnet),
        ];
        let fakes = [
            Failing::HostLinks,
            Failing::HostSysctl,
            Failing::Firewall,
            Failing::ContainerLinks,
            Failing::ContainerSysctl,
        ];
        let ep = v4_endpoint();
        let host_if = host_ifname(&ep.id);
        let mut failures = 0;
        for (t, kind) in combos {
            // Positive control: the whole attach works and leaves links.
            let (f, n) = Fakes::ready(t);
            attach(f.kernel(), f.container(), &n, &ep, kind).unwrap();
            let counts: Vec<usize> = fakes.iter().map(|&w| f.calls(w)).collect();
            if uses_veth(t) {
                assert!(f.links.link_index(&host_if).unwrap().is_some(), "{t}");
            }
            for (&which, &count) in fakes.iter().zip(&counts) {
                for call in 1..=count {
                    let (f, n) = Fakes::ready(t);
                    f.fail(which, call);
                    let what = format!("{t} {kind}, {which:?} call {call}");
                    let Err(err) = attach(f.kernel(), f.container(), &n, &ep, kind) else {
                        panic!("{what}: the attach worked");
                    };
                    assert!(matches!(err, NetError::Injected { .. }), "{what}: {err}");
                    let host_ops = f.links.ops();
                    let made_macvlan = host_ops.iter().enumerate().any(|(i, op)| {
                        matches!(op, LinkOp::CreateMacvlan { .. })
                            && !(matches!(which, Failing::HostLinks) && i + 1 == call)
                    });
                    assert_eq!(f.links.link_index(&host_if).unwrap(), None, "{what}");
                    assert!(firewall_is_clean(&f.firewall), "{what}");
                    if made_macvlan {
                        assert!(
                            f.ctr.ops().contains(&LinkOp::DeleteLink { name: "eth7".into() }),
                            "{what}: {:?}",
                            f.ctr.ops()
                        );
                    }
                    failures += 1;
                }
            }
        }
        assert!(failures > 40, "only {failures} failures were tried");
    }

    #[test]
    fn a_network_setup_failing_at_any_call_leaves_nothing() {
        for t in [NetworkType::Bridge, NetworkType::Loopback] {
            let f = Fakes::new();
            let n = network(t);
            setup_network(f.kernel(), &n).unwrap();
            let counts = [
                f.links.ops().len(),
                f.sysctl.writes().len(),
                f.firewall.batches().len(),
            ];
            for (which, count) in [Failing::HostLinks, Failing::HostSysctl, Failing::Firewall]
                .into_iter()
                .zip(counts)
            {
                for call in 1..=count {
                    let f = Fakes::new();
                    f.fail(which, call);
                    let what = format!("{t}, {which:?} call {call}");
                    setup_network(f.kernel(), &n).unwrap_err();
                    assert_eq!(f.links.link_index("cell0").unwrap(), None, "{what}");
                    assert!(f.links.list_routes().unwrap().is_empty(), "{what}");
                    assert!(firewall_is_clean(&f.firewall), "{what}");
                }
            }
        }
    }

    #[test]
    fn a_failing_undo_is_reported_with_the_original_error() {
        let (f, n) = Fakes::ready(NetworkType::Bridge);
        // The container side fails; then the undo's firewall delete fails.
        f.ctr.fail_call(1);
        f.firewall.fail_call(2);
        let err = attach(f.kernel(), f.container(), &n, &v4_endpoint(), NetworkDriver::Vnet).unwrap_err();
        let NetError::Undo { error, undo } = &err else {
            panic!("not an undo error: {err:?}");
        };
        assert!(matches!(**error, NetError::Injected { call: 1 }), "{error}");
        assert_eq!(undo.0.len(), 1);
        assert_eq!(
            err.to_string(),
            "injected failure of call 1; undoing it failed too: injected failure of call 2"
        );
        // The undo went on past the firewall: the veth is gone.
        assert_eq!(f.links.link_index("cvaabbccddeeff").unwrap(), None);
    }

    #[test]
    fn teardown_goes_on_past_failures_and_reports_them_all() {
        let (f, n) = Fakes::ready(NetworkType::Bridge);
        let ep = v4_endpoint();
        attach(f.kernel(), f.container(), &n, &ep, NetworkDriver::Vnet).unwrap();
        f.firewall.fail_call(1);
        f.links.fail_call(1);
        let err = detach(f.kernel(), None, &n, &ep).unwrap_err();
        let NetError::Several(errors) = &err else {
            panic!("not a list: {err:?}");
        };
        assert_eq!(errors.0.len(), 2, "{err}");
        assert!(err.to_string().starts_with("2 errors: "), "{err}");
        // Both were tried; run again, it finishes the job.
        detach(f.kernel(), None, &n, &ep).unwrap();
        assert_eq!(f.links.link_index("cvaabbccddeeff").unwrap(), None);
        assert!(firewall_is_clean(&f.firewall));
        // Twice is fine: absent things count as removed.
        detach(f.kernel(), None, &n, &ep).unwrap();
        teardown_network(f.kernel(), &n).unwrap();
        teardown_network(f.kernel(), &n).unwrap();
    }

    #[test]
    fn a_network_teardown_collects_errors_and_keeps_going() {
        let f = Fakes::new();
        let n = network(NetworkType::Loopback);
        setup_network(f.kernel(), &n).unwrap();
        f.firewall.fail_call(1);
        let err = teardown_network(f.kernel(), &n).unwrap_err();
        assert!(matches!(err, NetError::Injected { .. }), "{err}");
        // The routes were removed even though the firewall failed first.
        assert!(f.links.list_routes().unwrap().is_empty());
    }

    #[test]
    fn plans_with_container_steps_need_a_container() {
        let f = Fakes::new();
        let plan = plan_of(NetworkType::Bridge, NetworkDriver::Vnet).unwrap();
        let err = plan::apply(&plan, f.kernel(), None).unwrap_err();
        assert!(matches!(err, NetError::NoContainer), "{err}");
        assert!(f.links.ops().is_empty() && f.firewall.batches().is_empty());
    }

    #[test]
    fn the_start_plan_of_a_disabled_container_sets_up_lo_only() {
        let f = Fakes::new();
        let plan = container_driver(NetworkDriver::Disabled).plan_start();
        plan::apply(&plan, f.kernel(), Some(f.container())).unwrap();
        assert_eq!(f.ctr.ops(), vec![LinkOp::SetUp { name: "lo".into() }]);
        assert!(f.links.ops().is_empty());
    }
}
