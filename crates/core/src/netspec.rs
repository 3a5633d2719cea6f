//! The `network create` request and the checks it must pass.
//!
//! [`CreateNetwork`] is what the client sends (the JSON body of
//! `POST /networks`), close to the command line: strings and optional flags.
//! [`CreateNetwork::validate`] turns it into a [`ValidNetwork`], whose values
//! are typed and complete: subnets parsed, gateways chosen, NAT decided up to
//! the host's default route. Everything that needs no state is checked here,
//! once, so the CLI and the API give the same errors. What needs the store or
//! the host is left to the engine: taken names, [`check_overlap`] against the
//! existing networks, picking a `cellN` interface and the default NAT
//! interface, which [`ValidNetwork::into_network`] then takes. What the host
//! itself holds (its addresses and routes) is checked by
//! [`check_host_overlap`], to which the engine passes what it read from the
//! kernel.
//!
//! Without `--subnet` (and with `--subnet6 auto`) the request asks for
//! blocks of celld's pools ([`ValidNetwork::pool_request`]); the engine
//! carves them ([`crate::pool`]) under its network-create lock and puts
//! them in with [`ValidNetwork::take_blocks`].
//!
//! Subnets are refused when no network of containers could work there:
//! prefixes shorter than /8 (IPv4) or /16 (IPv6), and anything overlapping
//! the unspecified, loopback, link-local, multicast or limited-broadcast
//! ranges (and, for IPv6, the IPv4-mapped range); [`reserved_range`] names
//! the range at fault.

use crate::error::{CoreError, Result, quoted};
use crate::ids;
use crate::ipam::{reserved_role_v4, reserved_role_v6};
use crate::limits::{SUBNET_PREFIX_MIN_V4, SUBNET_PREFIX_MIN_V6};
use crate::model::{Network, NetworkType};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What `cell network create` asks for; JSON body of POST /networks.
/// Unknown fields are refused, so a misspelt option is not silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNetwork {
    /// The network's name.
    pub name: String,
    /// `loopback` (the default), `bridge` or `custom`. Sent as `net_type`, as
    /// the API's schema says; `type`, the name [`Network`] uses, is accepted
    /// too.
    #[serde(default, alias = "type")]
    pub net_type: Option<String>,
    /// `-i`: the host interface. Required for custom networks; for the others
    /// the engine picks `cellN` when it is absent.
    #[serde(default)]
    pub interface: Option<String>,
    /// `--subnet`: an IPv4 CIDR.
    #[serde(default)]
    pub subnet: Option<String>,
    /// `--subnet6`: an IPv6 CIDR, or `auto` for a /64 of celld's pool6.
    #[serde(default)]
    pub subnet6: Option<String>,
    /// `--size N`: without `--subnet`, a bridge network takes the smallest
    /// block of the pool that holds N containers beside its network,
    /// gateway and broadcast addresses (pot's private bridges `-S N`).
    #[serde(default)]
    pub size: Option<u32>,
    /// `--gw`: `auto`, `none` or an IPv4 address; absent means the type's
    /// default.
    #[serde(default)]
    pub gateway: Option<String>,
    /// `--gw6`: `auto`, `none` or an IPv6 address; absent means the type's
    /// default.
    #[serde(default)]
    pub gateway6: Option<String>,
    /// `--nat IFNAME`: the interface NAT goes out of.
    #[serde(default)]
    pub nat: Option<String>,
    /// `--no-nat`.
    #[serde(default)]
    pub no_nat: bool,
    /// Whether containers may reach each other; true when absent.
    #[serde(default)]
    pub icc: Option<bool>,
    /// `--internal`: no traffic leaves the network.
    #[serde(default)]
    pub internal: bool,
    /// Whether containers may send only with their own addresses; true when
    /// absent.
    #[serde(default)]
    pub antispoof: Option<bool>,
}

/// Where NAT goes out, before the engine looks at the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatChoice {
    /// Out of the interface of the host's default route, which the engine
    /// finds.
    HostDefault,
    /// No NAT: `--no-nat`, internal and custom networks.
    Off,
    /// Out of the interface the user named.
    Interface(String),
}

/// A request that passed every check that needs no state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidNetwork {
    /// The network's name, valid and not reserved.
    pub name: String,
    /// Its type.
    pub net_type: NetworkType,
    /// The host interface the user named, if any; always set for custom
    /// networks.
    pub interface: Option<String>,
    /// IPv4 subnet, without host bits.
    pub subnet: Option<Ipv4Net>,
    /// IPv6 subnet, without host bits.
    pub subnet6: Option<Ipv6Net>,
    /// IPv4 gateway, inside `subnet` and not reserved.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 gateway, inside `subnet6` and not reserved.
    pub gateway6: Option<Ipv6Addr>,
    /// Where NAT goes out.
    pub nat: NatChoice,
    /// Whether containers may reach each other.
    pub icc: bool,
    /// Whether no traffic leaves the network.
    pub internal: bool,
    /// Whether containers may send only with their own addresses.
    pub antispoof: bool,
    /// What the engine is to carve from celld's pools, when a subnet was
    /// not given; [`ValidNetwork::take_blocks`] puts the blocks in.
    pub pool_request: Option<PoolRequest>,
}

/// The blocks a network takes from celld's pools ([`crate::pool`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRequest {
    /// The prefix length of the IPv4 block to carve (a /24, or what
    /// `--size` needs); `None` when the network has no IPv4 subnet from
    /// the pool.
    pub prefix4: Option<u8>,
    /// Whether to carve a /64 of the pool6 (`--subnet6 auto`).
    pub subnet6: bool,
    /// Whether the IPv4 gateway is the block's first address (bridges,
    /// `--gw` absent or `auto`).
    gateway_auto: bool,
    /// The same for IPv6.
    gateway6_auto: bool,
}

/// The words that differ between the IPv4 and IPv6 flags, so that one
/// function checks both.
struct Family {
    is_v6: bool,
    /// "IPv4" or "IPv6".
    label: &'static str,
    /// The flag's name in messages: "subnet" or "subnet6".
    subnet: &'static str,
    /// The other family's subnet flag, suggested when a CIDR is of that family.
    other_subnet_flag: &'static str,
    /// "gateway" or "gateway6".
    gateway: &'static str,
    /// The gateway's command-line flag.
    gateway_flag: &'static str,
    /// An example CIDR for parse errors.
    example: &'static str,
}

const V4: Family = Family {
    is_v6: false,
    label: "IPv4",
    subnet: "subnet",
    other_subnet_flag: "--subnet6",
    gateway: "gateway",
    gateway_flag: "--gw",
    example: "10.2.3.0/24",
};

const V6: Family = Family {
    is_v6: true,
    label: "IPv6",
    subnet: "subnet6",
    other_subnet_flag: "--subnet",
    gateway: "gateway6",
    gateway_flag: "--gw6",
    example: "fd00::/64",
};

impl Family {
    fn is_mine(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.is_v6
    }
}

/// Network names the engine gives a meaning of its own: `host` stands for
/// the host's stack wherever a network name is accepted.
const RESERVED_NAMES: &[&str] = &["host"];

impl CreateNetwork {
    /// Checks the request and fills in the defaults, without looking at any
    /// state. Each error is invalid and names the value at fault.
    pub fn validate(&self) -> Result<ValidNetwork> {
        let name = self.name.as_str();
        ids::validate_name("network", name)?;
        if RESERVED_NAMES.contains(&name) {
            return Err(CoreError::invalid(format!("network name '{name}' is reserved")));
        }

        let net_type: NetworkType = match &self.net_type {
            Some(t) => t.parse()?,
            None => NetworkType::Loopback,
        };

        if let Some(interface) = &self.interface {
            ids::validate_ifname("interface", interface)?;
        } else if net_type == NetworkType::Custom {
            return Err(CoreError::invalid(
                "custom networks need -i IFNAME: the host interface their containers attach to",
            ));
        }

        let subnet6_auto = self.subnet6.as_deref() == Some("auto");
        let pool_request = self.pool_request(name, net_type, subnet6_auto)?;
        let subnet = match &self.subnet {
            Some(text) => match parse_subnet(text, &V4)? {
                IpNet::V4(net) => Some(net),
                IpNet::V6(_) => unreachable!("parse_subnet checks the family"),
            },
            None => None,
        };
        let subnet6 = match &self.subnet6 {
            Some(_) if subnet6_auto => None,
            Some(text) => match parse_subnet(text, &V6)? {
                IpNet::V6(net) => Some(net),
                IpNet::V4(_) => unreachable!("parse_subnet checks the family"),
            },
            None => None,
        };

        let gateway = match resolve_gateway(
            name,
            net_type,
            self.gateway.as_deref(),
            subnet.map(IpNet::V4),
            &V4,
        )? {
            Some(IpAddr::V4(gw)) => Some(gw),
            Some(IpAddr::V6(_)) => unreachable!("resolve_gateway checks the family"),
            None => None,
        };
        let gateway6 = match resolve_gateway(
            name,
            net_type,
            self.gateway6.as_deref(),
            subnet6.map(IpNet::V6),
            &V6,
        )? {
            Some(IpAddr::V6(gw)) => Some(gw),
            Some(IpAddr::V4(_)) => unreachable!("resolve_gateway checks the family"),
            None => None,
        };

        let icc = self.icc.unwrap_or(true);
        let nat = self.nat_choice(net_type, icc)?;
        // A macvlan child's frames leave by the parent without passing a
        // hook of the host that cell filters in, so cell cannot promise
        // anti-spoofing there: it says so rather than pretend.
        let antispoof = match (net_type, self.antispoof) {
            (NetworkType::Custom, Some(true)) => {
                return Err(CoreError::invalid(format!(
                    "anti-spoofing is not available on custom networks (network '{name}')"
                )));
            }
            (NetworkType::Custom, _) => false,
            (_, asked) => asked.unwrap_or(true),
        };

        Ok(ValidNetwork {
            name: name.to_string(),
            net_type,
            interface: self.interface.clone(),
            subnet,
            subnet6,
            gateway,
            gateway6,
            nat,
            icc,
            internal: self.internal,
            antispoof,
            pool_request: pool_request.map(|(prefix4, subnet6)| PoolRequest {
                prefix4,
                subnet6,
                gateway_auto: net_type == NetworkType::Bridge
                    && matches!(self.gateway.as_deref(), None | Some("auto")),
                gateway6_auto: net_type == NetworkType::Bridge
                    && matches!(self.gateway6.as_deref(), None | Some("auto")),
            }),
        })
    }

    /// What a request without `--subnet` (or with `--subnet6 auto`) takes
    /// from the pools: the IPv4 block's prefix and whether a /64 of the
    /// pool6, or `None` when every subnet was given. A network given only
    /// `--subnet6 CIDR` stays IPv6-only, as before pools existed.
    fn pool_request(
        &self,
        name: &str,
        net_type: NetworkType,
        subnet6_auto: bool,
    ) -> Result<Option<(Option<u8>, bool)>> {
        if let Some(size) = self.size {
            if let Some(subnet) = &self.subnet {
                return Err(CoreError::invalid(format!(
                    "--size {size} cannot be used with --subnet {}: the subnet fixes the size",
                    quoted(subnet)
                )));
            }
            if net_type != NetworkType::Bridge {
                return Err(CoreError::invalid(format!(
                    "--size {size} is for bridge networks (pot's private bridges); network '{name}' is a {net_type} network"
                )));
            }
            if let (Some(subnet6), false) = (&self.subnet6, subnet6_auto) {
                return Err(CoreError::invalid(format!(
                    "--size {size} sizes an IPv4 block of the pool, which a network with only --subnet6 {} does not take",
                    quoted(subnet6)
                )));
            }
        }
        if net_type == NetworkType::Custom {
            // A custom network's containers sit on the parent's LAN: its
            // subnet is the LAN's, which no pool can know.
            if subnet6_auto {
                return Err(CoreError::invalid(format!(
                    "--subnet6 auto is not available on custom networks: network '{name}' takes the subnet of its interface's LAN"
                )));
            }
            if self.subnet.is_none() && self.subnet6.is_none() {
                return Err(CoreError::invalid(format!(
                    "custom network '{name}' needs --subnet or --subnet6: the subnet of its interface's LAN"
                )));
            }
            return Ok(None);
        }
        let carve4 = self.subnet.is_none() && (self.subnet6.is_none() || subnet6_auto);
        let prefix4 = match (carve4, self.size) {
            (false, _) => None,
            (true, Some(size)) => Some(crate::pool::prefix_for_size(size)?),
            (true, None) => Some(crate::pool::DEFAULT_BLOCK_PREFIX_V4),
        };
        Ok((prefix4.is_some() || subnet6_auto).then_some((prefix4, subnet6_auto)))
    }

    /// Decides NAT, and checks the flags that custom networks refuse: their
    /// containers sit on the LAN of the host interface, so there is nothing to
    /// translate, nothing to keep inside, and no bridge of ours to stop them
    /// reaching each other.
    fn nat_choice(&self, net_type: NetworkType, icc: bool) -> Result<NatChoice> {
        if let Some(nat) = &self.nat {
            if self.no_nat {
                return Err(CoreError::invalid(format!(
                    "--nat '{nat}' and --no-nat cannot be used together"
                )));
            }
            ids::validate_ifname("nat interface", nat)?;
        }
        if net_type == NetworkType::Custom {
            if let Some(nat) = &self.nat {
                return Err(CoreError::invalid(format!(
                    "custom networks have no NAT: their containers sit on the host interface's own LAN ('{nat}' given)"
                )));
            }
            if self.internal {
                return Err(CoreError::invalid(format!(
                    "custom networks cannot be internal: their containers sit on the host interface's own LAN (network '{}')",
                    self.name
                )));
            }
            if !icc {
                return Err(CoreError::invalid(format!(
                    "icc cannot be turned off on custom networks (network '{}')",
                    self.name
                )));
            }
            return Ok(NatChoice::Off);
        }
        if self.internal {
            if let Some(nat) = &self.nat {
                return Err(CoreError::invalid(format!(
                    "an internal network has no NAT ('{nat}' given)"
                )));
            }
            return Ok(NatChoice::Off);
        }
        Ok(match &self.nat {
            _ if self.no_nat => NatChoice::Off,
            Some(nat) => NatChoice::Interface(nat.clone()),
            None => NatChoice::HostDefault,
        })
    }
}

impl ValidNetwork {
    /// Puts in the blocks the engine carved for [`Self::pool_request`],
    /// with the gateways `auto` gives them on bridges.
    pub fn take_blocks(&mut self, subnet: Option<Ipv4Net>, subnet6: Option<Ipv6Net>) {
        let Some(request) = self.pool_request else {
            return;
        };
        if let Some(block) = subnet {
            self.subnet = Some(block);
            if request.gateway_auto {
                self.gateway = Some(Ipv4Addr::from(u32::from(block.network()) + 1));
            }
        }
        if let Some(block) = subnet6 {
            self.subnet6 = Some(block);
            if request.gateway6_auto {
                self.gateway6 = Some(Ipv6Addr::from(u128::from(block.network()) + 1));
            }
        }
    }

    /// The network to store, once the engine has given it an `id`, its host
    /// `interface` (the one the user named, or a free `cellN`) and the
    /// interface `nat` goes out of (`None` when [`NatChoice::Off`]).
    pub fn into_network(self, id: String, interface: String, nat: Option<String>) -> Network {
        Network {
            id,
            name: self.name,
            net_type: self.net_type,
            interface,
            subnet: self.subnet,
            subnet6: self.subnet6,
            gateway: self.gateway,
            gateway6: self.gateway6,
            nat,
            icc: self.icc,
            internal: self.internal,
            antispoof: self.antispoof,
        }
    }
}

/// Parses a CIDR of the family `fam`, refusing host bits, prefixes shorter
/// than the family's minimum and the ranges [`reserved_range`] names.
fn parse_subnet(text: &str, fam: &Family) -> Result<IpNet> {
    let bad = |why: String| CoreError::invalid(format!("invalid {} {}: {why}", fam.subnet, quoted(text)));
    let net: IpNet = text
        .parse()
        .map_err(|_| bad(format!("expected a CIDR such as {}", fam.example)))?;
    if !fam.is_mine(net.addr()) {
        return Err(bad(format!(
            "not an {} CIDR (use {})",
            fam.label, fam.other_subnet_flag
        )));
    }
    if net.trunc() != net {
        return Err(bad(format!("host bits are set (did you mean {}?)", net.trunc())));
    }
    // A subnet inside a reserved range is named after the range, however
    // short its prefix (224.0.0.0/4 is multicast before it is large).
    if let Some((range, what)) = reserved_range(net).filter(|(range, _)| range.contains(&net)) {
        return Err(bad(format!("it overlaps {range}, {what}")));
    }
    let min = if fam.is_v6 {
        SUBNET_PREFIX_MIN_V6
    } else {
        SUBNET_PREFIX_MIN_V4
    };
    if net.prefix_len() < min {
        return Err(bad(format!(
            "the prefix /{} is shorter than /{min}, the largest {} network cell accepts",
            net.prefix_len(),
            fam.label
        )));
    }
    if let Some((range, what)) = reserved_range(net) {
        return Err(bad(format!("it overlaps {range}, {what}")));
    }
    Ok(net)
}

/// The ranges no network of containers may overlap, with what they are.
/// Their addresses are never routed to a host's neighbours (loopback,
/// unspecified, link-local), are not unicast (multicast, broadcast), or
/// mean something else to the kernel (IPv4-mapped).
const RESERVED_RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/8", "the 'this network' range of the unspecified address"),
    ("127.0.0.0/8", "the loopback range"),
    ("169.254.0.0/16", "the link-local range"),
    ("224.0.0.0/4", "the multicast range"),
    ("255.255.255.255/32", "the limited broadcast address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "the loopback address"),
    ("::ffff:0:0/96", "the IPv4-mapped range"),
    ("fe80::/10", "the link-local range"),
    ("ff00::/8", "the multicast range"),
];

/// The first reserved range `subnet` overlaps, and what that range is for
/// (e.g. `127.0.0.0/8`, "the loopback range"), or `None` when it overlaps
/// none.
pub fn reserved_range(subnet: IpNet) -> Option<(IpNet, &'static str)> {
    RESERVED_RANGES
        .iter()
        .map(|(range, what)| (range.parse::<IpNet>().expect("a valid CIDR"), *what))
        .find(|(range, _)| overlaps(*range, subnet))
}

/// What a gateway flag asked for.
enum GatewayAsk {
    /// Nothing: the type's default.
    Default,
    Auto,
    NoGateway,
    Ip(IpAddr),
}

/// The gateway of the family `fam` for a network of `net_type` named `name`,
/// from the flag's `text` and the family's `subnet`.
///
/// Bridge networks default to the first address of the subnet, held by the
/// bridge. Loopback networks have none: each container routes through its
/// veth. Custom networks may name the LAN's router, which cell cannot guess.
fn resolve_gateway(
    name: &str,
    net_type: NetworkType,
    text: Option<&str>,
    subnet: Option<IpNet>,
    fam: &Family,
) -> Result<Option<IpAddr>> {
    let ask = match text {
        None => GatewayAsk::Default,
        Some("auto") => GatewayAsk::Auto,
        Some("none") => GatewayAsk::NoGateway,
        Some(t) => match t.parse::<IpAddr>() {
            Ok(ip) if fam.is_mine(ip) => GatewayAsk::Ip(ip),
            Ok(_) => {
                return Err(CoreError::invalid(format!(
                    "invalid {} {}: not an {} address",
                    fam.gateway,
                    quoted(t),
                    fam.label
                )));
            }
            Err(_) => {
                return Err(CoreError::invalid(format!(
                    "invalid {} {}: expected an {} address, 'auto' or 'none'",
                    fam.gateway,
                    quoted(t),
                    fam.label
                )));
            }
        },
    };
    let text = text.unwrap_or_default();
    match (net_type, ask) {
        (_, GatewayAsk::NoGateway) => Ok(None),
        (NetworkType::Loopback, GatewayAsk::Ip(_)) => Err(CoreError::invalid(format!(
            "loopback networks have no {} (got '{text}')",
            fam.gateway
        ))),
        (NetworkType::Loopback, _) => Ok(None),
        (NetworkType::Custom, GatewayAsk::Auto) => Err(CoreError::invalid(format!(
            "custom networks have no automatic {}; give {} IP or none (got '{text}')",
            fam.gateway, fam.gateway_flag
        ))),
        (NetworkType::Custom, GatewayAsk::Default) => Ok(None),
        (NetworkType::Bridge, GatewayAsk::Default | GatewayAsk::Auto) => match subnet {
            None => Ok(None),
            Some(subnet) if subnet.prefix_len() == subnet.max_prefix_len() => {
                Err(CoreError::invalid(format!(
                    "network '{name}' has no room for a {} in {subnet} (give a larger subnet or {} none)",
                    fam.gateway, fam.gateway_flag
                )))
            }
            Some(subnet) => Ok(Some(first_after_network(subnet))),
        },
        (NetworkType::Custom | NetworkType::Bridge, GatewayAsk::Ip(ip)) => {
            check_gateway(ip, text, subnet, fam).map(Some)
        }
    }
}

/// The address after the network address: what `auto` picks.
fn first_after_network(subnet: IpNet) -> IpAddr {
    match subnet {
        IpNet::V4(net) => IpAddr::V4(Ipv4Addr::from(u32::from(net.network()) + 1)),
        IpNet::V6(net) => IpAddr::V6(Ipv6Addr::from(u128::from(net.network()) + 1)),
    }
}

/// Checks a gateway the user gave: inside the subnet, not reserved, and not
/// the subnet's only address.
fn check_gateway(ip: IpAddr, text: &str, subnet: Option<IpNet>, fam: &Family) -> Result<IpAddr> {
    let gw = fam.gateway;
    let Some(subnet) = subnet else {
        return Err(CoreError::invalid(format!(
            "{gw} '{text}' given but no --{}",
            fam.subnet
        )));
    };
    if !subnet.contains(&ip) {
        return Err(CoreError::invalid(format!(
            "{gw} '{text}' is outside the subnet {subnet}"
        )));
    }
    let role = match (subnet, ip) {
        (IpNet::V4(net), IpAddr::V4(ip)) => reserved_role_v4(net, ip, true),
        (IpNet::V6(net), IpAddr::V6(ip)) => reserved_role_v6(net, ip),
        _ => None,
    };
    if let Some(role) = role {
        return Err(CoreError::invalid(format!(
            "{gw} '{text}' is the {role} of {subnet}"
        )));
    }
    if subnet.prefix_len() == subnet.max_prefix_len() {
        return Err(CoreError::invalid(format!(
            "{gw} '{text}' leaves no address for containers in {subnet}"
        )));
    }
    Ok(ip)
}

/// Whether two subnets share any address (same family only; different
/// families never overlap).
///
/// Two CIDR blocks either nest or are disjoint, so they overlap exactly when
/// one holds the other's network address.
pub fn overlaps(a: IpNet, b: IpNet) -> bool {
    match (a.trunc(), b.trunc()) {
        (IpNet::V4(a), IpNet::V4(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        (IpNet::V6(a), IpNet::V6(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

/// The first subnet of `existing` networks that overlaps `candidate`'s v4 or
/// v6 subnet, as a conflict, e.g. "subnet 10.2.3.0/24 overlaps subnet
/// 10.2.0.0/16 of network 'other'".
///
/// Overlapping networks would put the same address behind two host routes
/// or bridges. The caller passes every stored network; the candidate is not
/// among them yet.
pub fn check_overlap(candidate: &ValidNetwork, existing: &[Network]) -> Result<()> {
    let mine = [candidate.subnet.map(IpNet::V4), candidate.subnet6.map(IpNet::V6)];
    for other in existing {
        let theirs = [other.subnet.map(IpNet::V4), other.subnet6.map(IpNet::V6)];
        for (a, b) in mine
            .iter()
            .flatten()
            .flat_map(|a| theirs.iter().flatten().map(move |b| (a, b)))
        {
            if overlaps(*a, *b) {
                return Err(CoreError::conflict(format!(
                    "subnet {a} overlaps subnet {b} of network '{}'",
                    other.name
                )));
            }
        }
    }
    Ok(())
}

/// Whether a [`HostPrefix`] is an address the host holds or a route it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPrefixKind {
    /// An address on an interface, with its prefix length (`10.0.2.15/24`).
    Address,
    /// A route out of an interface (`10.9.0.0/16`).
    Route,
}

/// An address or route the host holds, and the interface it is on; what
/// [`check_host_overlap`] compares a new network with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPrefix {
    /// The address with its prefix length, or the route's destination.
    pub prefix: IpNet,
    /// The interface the address is on or the route goes out of.
    pub interface: String,
    /// Address or route.
    pub kind: HostPrefixKind,
}

/// Checks that a new network's subnets overlap nothing the host holds, as a
/// conflict naming the host's prefix and interface, e.g. "subnet
/// 10.0.2.0/24 overlaps 10.0.2.15/24 on eth0, an address of the host".
///
/// A network over the host's own LAN would take its addresses away from it
/// (the host lost its default gateway this way). The caller passes the
/// host's addresses and routes as the kernel lists them, leaving out cell's
/// own (the unreachable routes and gateways of its networks, which
/// [`check_overlap`] covers). Default routes (`/0`) are skipped here even if
/// passed: they cover every address and would refuse every network.
pub fn check_host_overlap(
    subnet: Option<Ipv4Net>,
    subnet6: Option<Ipv6Net>,
    host: &[HostPrefix],
) -> Result<()> {
    for mine in [subnet.map(IpNet::V4), subnet6.map(IpNet::V6)]
        .into_iter()
        .flatten()
    {
        let clash = host
            .iter()
            .filter(|h| h.prefix.prefix_len() > 0)
            .find(|h| overlaps(mine, h.prefix));
        if let Some(h) = clash {
            let (word, what) = match h.kind {
                HostPrefixKind::Address => ("on", "an address"),
                HostPrefixKind::Route => ("via", "a route"),
            };
            return Err(CoreError::conflict(format!(
                "subnet {mine} overlaps {} {word} {}, {what} of the host",
                h.prefix,
                crate::error::printable(&h.interface)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    fn request(net_type: &str) -> CreateNetwork {
        CreateNetwork {
            name: "testnet".into(),
            net_type: Some(net_type.into()),
            subnet: Some("10.2.3.0/24".into()),
            ..Default::default()
        }
    }

    fn custom() -> CreateNetwork {
        CreateNetwork {
            interface: Some("eth0".into()),
            ..request("custom")
        }
    }

    /// Asserts that `req` is invalid with a message holding `needle`.
    fn refused(req: &CreateNetwork, needle: &str) -> String {
        let err = req.validate().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
        assert!(err.message.contains(needle), "{err:?} lacks {needle:?}");
        err.message
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_make_a_loopback_network() {
        let req = CreateNetwork {
            name: "lo1".into(),
            subnet: Some("10.2.3.0/24".into()),
            ..Default::default()
        };
        let valid = req.validate().unwrap();
        assert_eq!(
            valid,
            ValidNetwork {
                name: "lo1".into(),
                net_type: NetworkType::Loopback,
                interface: None,
                subnet: Some("10.2.3.0/24".parse().unwrap()),
                subnet6: None,
                gateway: None,
                gateway6: None,
                nat: NatChoice::HostDefault,
                icc: true,
                internal: false,
                antispoof: true,
                pool_request: None,
            }
        );
    }

    #[test]
    fn bridge_gets_automatic_gateways() {
        let req = CreateNetwork {
            subnet6: Some("fd00::/64".into()),
            ..request("bridge")
        };
        let valid = req.validate().unwrap();
        assert_eq!(valid.net_type, NetworkType::Bridge);
        assert_eq!(valid.gateway, Some("10.2.3.1".parse().unwrap()));
        assert_eq!(valid.gateway6, Some("fd00::1".parse().unwrap()));

        let req = CreateNetwork {
            gateway: Some("auto".into()),
            gateway6: Some("auto".into()),
            ..req
        };
        let valid = req.validate().unwrap();
        assert_eq!(valid.gateway, Some("10.2.3.1".parse().unwrap()));
        assert_eq!(valid.gateway6, Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn bridge_gateways_may_be_chosen_or_dropped() {
        let req = CreateNetwork {
            gateway: Some("10.2.3.254".into()),
            subnet6: Some("fd00::/64".into()),
            gateway6: Some("none".into()),
            ..request("bridge")
        };
        let valid = req.validate().unwrap();
        assert_eq!(valid.gateway, Some("10.2.3.254".parse().unwrap()));
        assert_eq!(valid.gateway6, None);
    }

    #[test]
    fn bridge_with_only_one_family_has_one_gateway() {
        let req = CreateNetwork {
            subnet: None,
            subnet6: Some("fd00::/64".into()),
            ..request("bridge")
        };
        let valid = req.validate().unwrap();
        assert_eq!(valid.gateway, None);
        assert_eq!(valid.gateway6, Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn bridge_gateway_needs_room() {
        let req = CreateNetwork {
            subnet: Some("10.2.3.4/32".into()),
            ..request("bridge")
        };
        refused(&req, "10.2.3.4/32");
        let req = CreateNetwork {
            gateway: Some("none".into()),
            ..req
        };
        assert_eq!(req.validate().unwrap().gateway, None);
        let req = CreateNetwork {
            gateway: Some("10.2.3.4".into()),
            ..req
        };
        refused(&req, "gateway '10.2.3.4' leaves no address");
        let req = CreateNetwork {
            subnet: None,
            subnet6: Some("fd00::7/128".into()),
            ..request("bridge")
        };
        refused(&req, "no room for a gateway6 in fd00::7/128");
        // A /31 has room: the gateway takes one address, a container the other.
        let req = CreateNetwork {
            subnet: Some("10.2.3.4/31".into()),
            ..request("bridge")
        };
        assert_eq!(req.validate().unwrap().gateway, Some("10.2.3.5".parse().unwrap()));
    }

    #[test]
    fn loopback_has_no_gateway() {
        let req = CreateNetwork {
            gateway: Some("auto".into()),
            ..request("loopback")
        };
        assert_eq!(req.validate().unwrap().gateway, None);
        let req = CreateNetwork {
            gateway: Some("none".into()),
            ..req
        };
        assert_eq!(req.validate().unwrap().gateway, None);
        let req = CreateNetwork {
            gateway: Some("10.2.3.1".into()),
            ..req
        };
        let msg = refused(&req, "'10.2.3.1'");
        assert_eq!(msg, "loopback networks have no gateway (got '10.2.3.1')");
        let req = CreateNetwork {
            subnet6: Some("fd00::/64".into()),
            gateway6: Some("fd00::1".into()),
            ..request("loopback")
        };
        refused(&req, "loopback networks have no gateway6 (got 'fd00::1')");
    }

    #[test]
    fn custom_gateway_is_explicit() {
        let valid = custom().validate().unwrap();
        assert_eq!(valid.gateway, None);
        assert_eq!(valid.interface.as_deref(), Some("eth0"));
        let req = CreateNetwork {
            gateway: Some("10.2.3.254".into()),
            ..custom()
        };
        assert_eq!(
            req.validate().unwrap().gateway,
            Some("10.2.3.254".parse().unwrap())
        );
        let req = CreateNetwork {
            gateway: Some("auto".into()),
            ..custom()
        };
        let msg = refused(&req, "'auto'");
        assert!(msg.starts_with("custom networks have no automatic gateway; give --gw IP or none"));
        let req = CreateNetwork {
            subnet6: Some("fd00::/64".into()),
            gateway6: Some("auto".into()),
            ..custom()
        };
        refused(&req, "give --gw6 IP or none");
    }

    #[test]
    fn gateways_are_checked() {
        let bridge = request("bridge");
        let with = |gw: &str| CreateNetwork {
            gateway: Some(gw.into()),
            ..bridge.clone()
        };
        assert_eq!(
            refused(&with("fd00::1"), "'fd00::1'"),
            "invalid gateway 'fd00::1': not an IPv4 address"
        );
        refused(&with("10.2.3"), "invalid gateway '10.2.3'");
        assert_eq!(
            refused(&with("10.9.0.1"), "'10.9.0.1'"),
            "gateway '10.9.0.1' is outside the subnet 10.2.3.0/24"
        );
        refused(&with("10.2.3.0"), "gateway '10.2.3.0' is the network address");
        refused(
            &with("10.2.3.255"),
            "gateway '10.2.3.255' is the broadcast address",
        );
        let custom_bcast = CreateNetwork {
            gateway: Some("10.2.3.255".into()),
            ..custom()
        };
        refused(&custom_bcast, "'10.2.3.255' is the broadcast address");
        let no_subnet = CreateNetwork {
            subnet: None,
            subnet6: Some("fd00::/64".into()),
            gateway: Some("10.0.0.1".into()),
            ..bridge.clone()
        };
        assert_eq!(
            refused(&no_subnet, "'10.0.0.1'"),
            "gateway '10.0.0.1' given but no --subnet"
        );
        // A /31 reserves nothing, so its first address may be the gateway.
        let slash31 = CreateNetwork {
            subnet: Some("10.2.3.4/31".into()),
            gateway: Some("10.2.3.4".into()),
            ..bridge
        };
        assert_eq!(
            slash31.validate().unwrap().gateway,
            Some("10.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn gateway6_is_checked() {
        let bridge = CreateNetwork {
            subnet6: Some("fd00::/64".into()),
            ..request("bridge")
        };
        let with = |gw: &str| CreateNetwork {
            gateway6: Some(gw.into()),
            ..bridge.clone()
        };
        assert_eq!(
            with("fd00::fe").validate().unwrap().gateway6,
            Some("fd00::fe".parse().unwrap())
        );
        assert_eq!(
            refused(&with("10.2.3.1"), "'10.2.3.1'"),
            "invalid gateway6 '10.2.3.1': not an IPv6 address"
        );
        refused(&with("fd00:::1"), "invalid gateway6 'fd00:::1'");
        assert_eq!(
            refused(&with("fd01::1"), "'fd01::1'"),
            "gateway6 'fd01::1' is outside the subnet fd00::/64"
        );
        refused(
            &with("fd00::"),
            "gateway6 'fd00::' is the subnet-router anycast address",
        );
        let no_subnet6 = CreateNetwork {
            subnet6: None,
            gateway6: Some("fd00::1".into()),
            ..bridge
        };
        assert_eq!(
            refused(&no_subnet6, "'fd00::1'"),
            "gateway6 'fd00::1' given but no --subnet6"
        );
    }

    #[test]
    fn names_are_checked() {
        let req = CreateNetwork {
            name: "a/b".into(),
            ..request("bridge")
        };
        refused(&req, "'a/b'");
        let req = CreateNetwork {
            name: "host".into(),
            ..request("bridge")
        };
        assert_eq!(refused(&req, "'host'"), "network name 'host' is reserved");
    }

    #[test]
    fn types_are_checked() {
        refused(&request("vnet"), "unknown network type 'vnet'");
        for t in ["loopback", "bridge"] {
            assert_eq!(request(t).validate().unwrap().net_type.as_str(), t);
        }
    }

    #[test]
    fn interfaces_are_checked() {
        let req = CreateNetwork {
            interface: Some("averyveryverylongname".into()),
            ..request("bridge")
        };
        refused(&req, "invalid interface name 'averyveryverylongname'");
        let req = CreateNetwork {
            interface: Some("br-lan".into()),
            ..request("bridge")
        };
        assert_eq!(req.validate().unwrap().interface.as_deref(), Some("br-lan"));
        refused(
            &request("custom"),
            "custom networks need -i IFNAME: the host interface their containers attach to",
        );
    }

    #[test]
    fn without_a_subnet_a_block_of_the_pool_is_asked_for() {
        let req = CreateNetwork {
            subnet: None,
            ..request("bridge")
        };
        let mut valid = req.validate().unwrap();
        let asked = valid.pool_request.unwrap();
        assert_eq!((asked.prefix4, asked.subnet6), (Some(24), false));
        assert_eq!((valid.subnet, valid.gateway), (None, None));
        valid.take_blocks(Some("10.192.7.0/24".parse().unwrap()), None);
        assert_eq!(valid.subnet, Some("10.192.7.0/24".parse().unwrap()));
        assert_eq!(valid.gateway, Some("10.192.7.1".parse().unwrap()));
        // pot's -S 4: a /29; --subnet6 auto: a /64 too, with its gateway.
        let req = CreateNetwork {
            subnet: None,
            subnet6: Some("auto".into()),
            size: Some(4),
            ..request("bridge")
        };
        let mut valid = req.validate().unwrap();
        let asked = valid.pool_request.unwrap();
        assert_eq!((asked.prefix4, asked.subnet6), (Some(29), true));
        valid.take_blocks(
            Some("10.192.1.8/29".parse().unwrap()),
            Some("fd00:1:2:3::/64".parse().unwrap()),
        );
        assert_eq!(valid.gateway6, Some("fd00:1:2:3::1".parse().unwrap()));
        // --gw none, and loopback networks, keep no gateway.
        let req = CreateNetwork {
            subnet: None,
            gateway: Some("none".into()),
            ..request("bridge")
        };
        let mut valid = req.validate().unwrap();
        valid.take_blocks(Some("10.192.7.0/24".parse().unwrap()), None);
        assert_eq!(valid.gateway, None);
        let mut valid = CreateNetwork {
            subnet: None,
            ..request("loopback")
        }
        .validate()
        .unwrap();
        valid.take_blocks(Some("10.192.7.0/24".parse().unwrap()), None);
        assert_eq!(valid.gateway, None);
        // With --subnet6 CIDR alone the network stays IPv6-only; with
        // both subnets given nothing is asked.
        let v6_only = CreateNetwork {
            subnet: None,
            subnet6: Some("fd00::/64".into()),
            ..request("bridge")
        };
        assert_eq!(v6_only.validate().unwrap().pool_request, None);
        assert_eq!(request("bridge").validate().unwrap().pool_request, None);
        // --subnet with --subnet6 auto: only the /64 is carved.
        let req = CreateNetwork {
            subnet6: Some("auto".into()),
            ..request("bridge")
        };
        let asked = req.validate().unwrap().pool_request.unwrap();
        assert_eq!((asked.prefix4, asked.subnet6), (None, true));
    }

    #[test]
    fn sizes_and_pool_requests_that_mean_nothing_are_refused() {
        let sized = |size: u32, net_type: &str| CreateNetwork {
            subnet: None,
            size: Some(size),
            ..request(net_type)
        };
        refused(&sized(0, "bridge"), "invalid size '0'");
        refused(&sized(u32::MAX, "bridge"), "invalid size '4294967295'");
        let msg = refused(&sized(4, "loopback"), "--size 4 is for bridge networks");
        assert!(msg.ends_with("network 'testnet' is a loopback network"), "{msg}");
        let with_subnet = CreateNetwork {
            size: Some(4),
            ..request("bridge")
        };
        assert_eq!(
            refused(&with_subnet, "--size 4"),
            "--size 4 cannot be used with --subnet '10.2.3.0/24': the subnet fixes the size"
        );
        let v6_only = CreateNetwork {
            subnet6: Some("fd00::/64".into()),
            ..sized(4, "bridge")
        };
        refused(
            &v6_only,
            "which a network with only --subnet6 'fd00::/64' does not take",
        );
        let custom_bare = CreateNetwork {
            subnet: None,
            ..custom()
        };
        refused(
            &custom_bare,
            "custom network 'testnet' needs --subnet or --subnet6",
        );
        let custom_auto = CreateNetwork {
            subnet6: Some("auto".into()),
            ..custom()
        };
        refused(&custom_auto, "--subnet6 auto is not available on custom networks");
        // A fixed gateway needs the subnet it lies in.
        let gw = CreateNetwork {
            subnet: None,
            gateway: Some("10.192.0.1".into()),
            ..request("bridge")
        };
        refused(&gw, "gateway '10.192.0.1' given but no --subnet");
    }

    #[test]
    fn subnets_are_checked() {
        let with = |s: &str| CreateNetwork {
            subnet: Some(s.into()),
            ..request("bridge")
        };
        refused(&with("10.2.3/24"), "invalid subnet '10.2.3/24': ");
        refused(&with("10.2.3.0"), "invalid subnet '10.2.3.0': ");
        refused(&with("10.2.3.0/33"), "invalid subnet '10.2.3.0/33': ");
        assert_eq!(
            refused(&with("fd00::/64"), "'fd00::/64'"),
            "invalid subnet 'fd00::/64': not an IPv4 CIDR (use --subnet6)"
        );
        assert_eq!(
            refused(&with("10.2.3.5/24"), "'10.2.3.5/24'"),
            "invalid subnet '10.2.3.5/24': host bits are set (did you mean 10.2.3.0/24?)"
        );

        let with6 = |s: &str| CreateNetwork {
            subnet: None,
            subnet6: Some(s.into()),
            ..request("bridge")
        };
        assert_eq!(
            with6("fd00::/64").validate().unwrap().subnet6,
            Some("fd00::/64".parse().unwrap())
        );
        refused(&with6("fd00::/129"), "invalid subnet6 'fd00::/129': ");
        assert_eq!(
            refused(&with6("10.0.0.0/8"), "'10.0.0.0/8'"),
            "invalid subnet6 '10.0.0.0/8': not an IPv6 CIDR (use --subnet)"
        );
        assert_eq!(
            refused(&with6("fd00::5/64"), "'fd00::5/64'"),
            "invalid subnet6 'fd00::5/64': host bits are set (did you mean fd00::/64?)"
        );
    }

    #[test]
    fn nat_follows_the_flags() {
        assert_eq!(request("bridge").validate().unwrap().nat, NatChoice::HostDefault);
        let req = CreateNetwork {
            no_nat: true,
            ..request("bridge")
        };
        assert_eq!(req.validate().unwrap().nat, NatChoice::Off);
        let req = CreateNetwork {
            nat: Some("eth0".into()),
            ..request("loopback")
        };
        assert_eq!(req.validate().unwrap().nat, NatChoice::Interface("eth0".into()));
        let req = CreateNetwork {
            internal: true,
            ..request("bridge")
        };
        let valid = req.validate().unwrap();
        assert_eq!(valid.nat, NatChoice::Off);
        assert!(valid.internal);
        let req = CreateNetwork {
            internal: true,
            no_nat: true,
            ..request("bridge")
        };
        assert_eq!(req.validate().unwrap().nat, NatChoice::Off);
    }

    #[test]
    fn nat_flags_are_checked() {
        let req = CreateNetwork {
            nat: Some("eth0".into()),
            no_nat: true,
            ..request("bridge")
        };
        assert_eq!(
            refused(&req, "'eth0'"),
            "--nat 'eth0' and --no-nat cannot be used together"
        );
        let req = CreateNetwork {
            nat: Some("eth 0".into()),
            ..request("bridge")
        };
        refused(&req, "invalid nat interface name 'eth 0'");
        let req = CreateNetwork {
            nat: Some("eth0".into()),
            internal: true,
            ..request("bridge")
        };
        assert_eq!(
            refused(&req, "'eth0'"),
            "an internal network has no NAT ('eth0' given)"
        );
    }

    #[test]
    fn custom_networks_refuse_nat_internal_and_no_icc() {
        assert_eq!(custom().validate().unwrap().nat, NatChoice::Off);
        let req = CreateNetwork {
            no_nat: true,
            ..custom()
        };
        assert_eq!(req.validate().unwrap().nat, NatChoice::Off);
        let req = CreateNetwork {
            nat: Some("eth1".into()),
            ..custom()
        };
        let msg = refused(&req, "'eth1'");
        assert!(msg.starts_with(
            "custom networks have no NAT: their containers sit on the host interface's own LAN"
        ));
        let req = CreateNetwork {
            internal: true,
            ..custom()
        };
        let msg = refused(&req, "'testnet'");
        assert!(msg.starts_with("custom networks cannot be internal"), "{msg}");
        let req = CreateNetwork {
            icc: Some(false),
            ..custom()
        };
        let msg = refused(&req, "'testnet'");
        assert!(
            msg.starts_with("icc cannot be turned off on custom networks"),
            "{msg}"
        );
    }

    #[test]
    fn custom_networks_have_no_antispoofing() {
        assert!(!custom().validate().unwrap().antispoof);
        let req = CreateNetwork {
            antispoof: Some(true),
            ..custom()
        };
        let msg = refused(&req, "'testnet'");
        assert!(
            msg.starts_with("anti-spoofing is not available on custom networks"),
            "{msg}"
        );
    }

    #[test]
    fn icc_and_antispoof_default_to_true() {
        let valid = request("bridge").validate().unwrap();
        assert!(valid.icc && valid.antispoof);
        let req = CreateNetwork {
            icc: Some(false),
            antispoof: Some(false),
            ..request("bridge")
        };
        let valid = req.validate().unwrap();
        assert!(!valid.icc && !valid.antispoof);
    }

    #[test]
    fn json_uses_net_type_and_defaults() {
        let req: CreateNetwork =
            serde_json::from_str(r#"{"name":"n1","net_type":"bridge","subnet":"10.2.3.0/24"}"#).unwrap();
        assert_eq!(req.net_type.as_deref(), Some("bridge"));
        assert_eq!(req.icc, None);
        assert!(!req.no_nat && !req.internal);
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["net_type"], "bridge");
        let again: CreateNetwork = serde_json::from_value(json).unwrap();
        assert_eq!(again, req);
        let alias: CreateNetwork = serde_json::from_str(r#"{"name":"n1","type":"custom"}"#).unwrap();
        assert_eq!(alias.net_type.as_deref(), Some("custom"));
    }

    #[test]
    fn into_network_takes_the_engine_choices() {
        let valid = CreateNetwork {
            subnet6: Some("fd00::/64".into()),
            icc: Some(false),
            ..request("bridge")
        }
        .validate()
        .unwrap();
        let net = valid
            .clone()
            .into_network("0123456789ab".into(), "cell3".into(), Some("eth0".into()));
        assert_eq!(net.id, "0123456789ab");
        assert_eq!(net.name, "testnet");
        assert_eq!(net.net_type, NetworkType::Bridge);
        assert_eq!(net.interface, "cell3");
        assert_eq!(net.subnet, valid.subnet);
        assert_eq!(net.subnet6, valid.subnet6);
        assert_eq!(net.gateway, valid.gateway);
        assert_eq!(net.gateway6, valid.gateway6);
        assert_eq!(net.nat.as_deref(), Some("eth0"));
        assert!(!net.icc && !net.internal && net.antispoof);
    }

    #[test]
    fn subnets_overlap_when_they_nest() {
        assert!(overlaps(net("10.2.3.0/24"), net("10.2.0.0/16")));
        assert!(overlaps(net("10.2.0.0/16"), net("10.2.3.0/24")));
        assert!(overlaps(net("10.2.3.0/24"), net("10.2.3.0/24")));
        assert!(overlaps(net("10.2.3.0/24"), net("10.2.3.77/32")));
        assert!(!overlaps(net("10.2.3.0/24"), net("10.2.4.0/24")));
        assert!(!overlaps(net("10.2.3.0/25"), net("10.2.3.128/25")));
        assert!(overlaps(net("fd00::/64"), net("fd00::/48")));
        assert!(!overlaps(net("fd00::/64"), net("fd00:0:0:1::/64")));
        assert!(!overlaps(net("0.0.0.0/0"), net("::/0")));
    }

    #[test]
    fn overlaps_are_reported_with_the_other_network() {
        let other = |name: &str, subnet: Option<&str>, subnet6: Option<&str>| Network {
            id: "0123456789ab".into(),
            name: name.into(),
            net_type: NetworkType::Bridge,
            interface: "cell0".into(),
            subnet: subnet.map(|s| s.parse().unwrap()),
            subnet6: subnet6.map(|s| s.parse().unwrap()),
            gateway: None,
            gateway6: None,
            nat: None,
            icc: true,
            internal: false,
            antispoof: true,
        };
        let candidate = CreateNetwork {
            subnet6: Some("fd00:1::/64".into()),
            ..request("bridge")
        }
        .validate()
        .unwrap();
        let existing = [
            other("a", Some("10.3.0.0/16"), Some("fd00:2::/64")),
            other("b", None, Some("fd00::/16")),
            other("other", Some("10.2.0.0/16"), None),
        ];
        check_overlap(&candidate, &existing[..1]).unwrap();
        let err = check_overlap(&candidate, &existing).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "subnet fd00:1::/64 overlaps subnet fd00::/16 of network 'b'"
        );
        let err = check_overlap(&candidate, &existing[2..]).unwrap_err();
        assert_eq!(
            err.message,
            "subnet 10.2.3.0/24 overlaps subnet 10.2.0.0/16 of network 'other'"
        );
    }

    #[test]
    fn reserved_and_huge_subnets_are_refused() {
        let with = |s: &str| CreateNetwork {
            subnet: Some(s.into()),
            ..request("bridge")
        };
        for (subnet, reason) in [
            (
                "0.0.0.0/0",
                "the prefix /0 is shorter than /8, the largest IPv4 network cell accepts",
            ),
            ("10.0.0.0/7", "the prefix /7 is shorter than /8"),
            ("127.0.0.0/8", "it overlaps 127.0.0.0/8, the loopback range"),
            ("127.0.0.1/32", "it overlaps 127.0.0.0/8, the loopback range"),
            ("224.0.0.0/4", "it overlaps 224.0.0.0/4, the multicast range"),
            ("239.1.2.0/24", "it overlaps 224.0.0.0/4, the multicast range"),
            (
                "169.254.0.0/16",
                "it overlaps 169.254.0.0/16, the link-local range",
            ),
            ("169.0.0.0/8", "it overlaps 169.254.0.0/16, the link-local range"),
            ("0.0.0.0/8", "it overlaps 0.0.0.0/8"),
            ("0.0.0.0/32", "it overlaps 0.0.0.0/8"),
            (
                "255.255.255.255/32",
                "it overlaps 255.255.255.255/32, the limited broadcast address",
            ),
            ("255.0.0.0/8", "the limited broadcast address"),
        ] {
            let msg = refused(&with(subnet), reason);
            assert!(msg.starts_with(&format!("invalid subnet '{subnet}': ")), "{msg}");
        }
        let with6 = |s: &str| CreateNetwork {
            subnet: None,
            subnet6: Some(s.into()),
            ..request("bridge")
        };
        for (subnet6, reason) in [
            (
                "::/0",
                "the prefix /0 is shorter than /16, the largest IPv6 network cell accepts",
            ),
            ("fd00::/8", "the prefix /8 is shorter than /16"),
            ("::/128", "it overlaps ::/128, the unspecified address"),
            ("::1/128", "it overlaps ::1/128, the loopback address"),
            ("::/16", "it overlaps ::/128, the unspecified address"),
            (
                "::ffff:10.0.0.0/104",
                "it overlaps ::ffff:0.0.0.0/96, the IPv4-mapped range",
            ),
            ("fe80::/64", "it overlaps fe80::/10, the link-local range"),
            ("ff00::/8", "it overlaps ff00::/8, the multicast range"),
            ("ff02::/16", "it overlaps ff00::/8, the multicast range"),
        ] {
            let msg = refused(&with6(subnet6), reason);
            assert!(
                msg.starts_with(&format!("invalid subnet6 '{subnet6}': ")),
                "{msg}"
            );
        }
        // The edges around the reserved ranges are ordinary networks.
        for ok in [
            "1.0.0.0/8",
            "126.255.255.0/24",
            "128.0.0.0/8",
            "169.253.0.0/16",
            "223.255.255.0/24",
            "10.2.3.4/30",
        ] {
            with(ok).validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for ok in ["fd00::/16", "2001:db8::/32", "fe00::/16", "fec0::/16", "::2/127"] {
            with6(ok).validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn subnets_with_control_characters_stay_on_one_line() {
        let req = CreateNetwork {
            subnet: Some("10.0.0.0/24\n".into()),
            ..request("bridge")
        };
        let msg = refused(&req, r#"invalid subnet "10.0.0.0/24\n": "#);
        assert!(!msg.contains('\n'));
        let req = CreateNetwork {
            gateway: Some("10.2.3.1\0".into()),
            ..request("bridge")
        };
        refused(&req, r#"invalid gateway "10.2.3.1\0": "#);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            serde_json::from_str::<CreateNetwork>(r#"{"name":"n1","subnet":"10.2.3.0/24","sbunet6":"x"}"#)
                .unwrap_err();
        assert!(err.to_string().contains("unknown field `sbunet6`"), "{err}");
    }

    fn host(prefix: &str, interface: &str, kind: HostPrefixKind) -> HostPrefix {
        HostPrefix {
            prefix: prefix.parse().unwrap(),
            interface: interface.into(),
            kind,
        }
    }

    #[test]
    fn subnets_may_not_overlap_what_the_host_holds() {
        use HostPrefixKind::{Address, Route};
        let v4 = |s: &str| Some(s.parse::<Ipv4Net>().unwrap());
        let v6 = |s: &str| Some(s.parse::<Ipv6Net>().unwrap());
        let holds = [
            host("0.0.0.0/0", "eth0", Route),
            host("::/0", "eth0", Route),
            host("10.0.2.15/24", "eth0", Address),
            host("192.168.50.0/24", "wg0", Route),
            host("2001:db8:1::5/64", "eth0", Address),
        ];
        let err = check_host_overlap(v4("10.0.2.0/24"), None, &holds).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "subnet 10.0.2.0/24 overlaps 10.0.2.15/24 on eth0, an address of the host"
        );
        let err = check_host_overlap(v4("10.0.0.0/8"), None, &holds).unwrap_err();
        assert!(err.message.contains("overlaps 10.0.2.15/24 on eth0"), "{err}");
        let err = check_host_overlap(v4("192.168.50.128/25"), None, &holds).unwrap_err();
        assert_eq!(
            err.message,
            "subnet 192.168.50.128/25 overlaps 192.168.50.0/24 via wg0, a route of the host"
        );
        let err = check_host_overlap(None, v6("2001:db8:1::/48"), &holds).unwrap_err();
        assert_eq!(
            err.message,
            "subnet 2001:db8:1::/48 overlaps 2001:db8:1::5/64 on eth0, an address of the host"
        );
        // The positive control: beside them, and the default routes do not count.
        check_host_overlap(v4("10.0.3.0/24"), v6("2001:db8:2::/64"), &holds).unwrap();
        check_host_overlap(None, None, &holds).unwrap();
        check_host_overlap(v4("10.0.2.0/24"), None, &[]).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_subnet_text_is_checked_without_panic(text in ".*", v6 in any::<bool>()) {
            let req = if v6 {
                CreateNetwork { subnet: None, subnet6: Some(text.clone()), ..request("bridge") }
            } else {
                CreateNetwork { subnet: Some(text.clone()), ..request("bridge") }
            };
            if let Err(e) = req.validate() {
                prop_assert!(e.message.contains(&quoted(&text)), "{}", e);
                prop_assert!(!e.message.chars().any(char::is_control));
            }
        }

        #[test]
        fn any_v4_cidr_is_refused_by_name_or_round_trips(addr in any::<Ipv4Addr>(), len in 0u8..=32) {
            let net = Ipv4Net::new(addr, len).unwrap();
            let text = net.to_string();
            let req = CreateNetwork { subnet: Some(text.clone()), gateway: Some("none".into()), ..request("bridge") };
            match req.validate() {
                Ok(valid) => {
                    prop_assert_eq!(valid.subnet, Some(net));
                    prop_assert!(len >= SUBNET_PREFIX_MIN_V4 && net.trunc() == net);
                    prop_assert!(reserved_range(IpNet::V4(net)).is_none());
                }
                Err(e) => prop_assert!(e.message.contains(&format!("'{text}'")), "{}", e),
            }
        }

        #[test]
        fn any_v6_cidr_is_refused_by_name_or_round_trips(addr in any::<Ipv6Addr>(), len in 0u8..=128) {
            let net = Ipv6Net::new(addr, len).unwrap().trunc();
            let text = net.to_string();
            let req = CreateNetwork {
                subnet: None,
                subnet6: Some(text.clone()),
                gateway6: Some("none".into()),
                ..request("bridge")
            };
            match req.validate() {
                Ok(valid) => {
                    prop_assert_eq!(valid.subnet6, Some(net));
                    prop_assert!(reserved_range(IpNet::V6(net)).is_none());
                }
                Err(e) => prop_assert!(e.message.contains(&format!("'{text}'")), "{}", e),
            }
        }

        #[test]
        fn any_request_is_checked_without_panic(
            name in ".{0,70}",
            net_type in proptest::option::of("loopback|bridge|custom|.{0,8}"),
            interface in proptest::option::of("[a-z0-9]{0,17}|.{0,4}"),
            subnet in proptest::option::of("([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}|.{0,6}"),
            subnet6 in proptest::option::of("f[cd][0-9a-f]{2}::/[0-9]{1,3}|auto|.{0,6}"),
            gateway in proptest::option::of("auto|none|10\\.[0-9]\\.[0-9]\\.[0-9]|.{0,4}"),
            gateway6 in proptest::option::of("auto|none|fd00::[0-9]|.{0,4}"),
            nat in proptest::option::of("[a-z0-9]{1,16}|.{0,4}"),
            flags in any::<(bool, bool, Option<bool>, Option<bool>)>(),
            size in proptest::option::of(0u32..600),
        ) {
            let (no_nat, internal, icc, antispoof) = flags;
            let req = CreateNetwork {
                name, net_type, interface, subnet, subnet6, gateway, gateway6, size, nat, no_nat, icc, internal, antispoof,
            };
            match req.validate() {
                Ok(valid) => {
                    prop_assert!(valid.subnet.is_some() || valid.subnet6.is_some() || valid.pool_request.is_some());
                    // What the client sends comes back the same through JSON.
                    let again: CreateNetwork = serde_json::from_value(serde_json::to_value(&req).unwrap()).unwrap();
                    prop_assert_eq!(again, req);
                }
                Err(e) => {
                    prop_assert_eq!(e.kind, ErrorKind::Invalid);
                    prop_assert!(!e.message.chars().any(char::is_control), "{:?}", e);
                }
            }
        }

        #[test]
        fn any_json_body_is_parsed_without_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = serde_json::from_slice::<CreateNetwork>(&body);
        }
    }
}
