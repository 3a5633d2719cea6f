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
//! interface, which [`ValidNetwork::into_network`] then takes.

use crate::error::{CoreError, Result};
use crate::ids;
use crate::ipam::{reserved_role_v4, reserved_role_v6};
use crate::model::{Network, NetworkType};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What `cell network create` asks for; JSON body of POST /networks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// `--subnet6`: an IPv6 CIDR.
    #[serde(default)]
    pub subnet6: Option<String>,
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

        if self.subnet.is_none() && self.subnet6.is_none() {
            return Err(CoreError::invalid(format!(
                "network '{name}' needs --subnet or --subnet6"
            )));
        }
        let subnet = match &self.subnet {
            Some(text) => match parse_subnet(text, &V4)? {
                IpNet::V4(net) => Some(net),
                IpNet::V6(_) => unreachable!("parse_subnet checks the family"),
            },
            None => None,
        };
        let subnet6 = match &self.subnet6 {
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
        })
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

/// Parses a CIDR of the family `fam`, refusing host bits.
fn parse_subnet(text: &str, fam: &Family) -> Result<IpNet> {
    let bad = |why: String| CoreError::invalid(format!("invalid {} '{text}': {why}", fam.subnet));
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
    Ok(net)
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
                    "invalid {} '{t}': not an {} address",
                    fam.gateway, fam.label
                )));
            }
            Err(_) => {
                return Err(CoreError::invalid(format!(
                    "invalid {} '{t}': expected an {} address, 'auto' or 'none'",
                    fam.gateway, fam.label
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

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
    fn a_subnet_is_needed() {
        let req = CreateNetwork {
            subnet: None,
            ..request("bridge")
        };
        assert_eq!(
            refused(&req, "'testnet'"),
            "network 'testnet' needs --subnet or --subnet6"
        );
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
}
