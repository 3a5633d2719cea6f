//! IP address management: which address a container gets on a network.
//!
//! The functions here are pure. The engine passes in the [`Network`] and the
//! addresses its endpoints already hold (from the store); this module answers
//! with a free address, or says why a requested one cannot be used. Keeping
//! the rules here means the store, the engine and the tests agree on them.
//!
//! The rules, for a subnet of a network:
//!
//! - the network address is never handed out, nor is the gateway, nor an
//!   address in use;
//! - on IPv4 bridge and custom networks the broadcast address is not handed
//!   out either. A loopback network may use it: each of its containers holds a
//!   /32 of its own, so nothing on the network broadcasts;
//! - an IPv4 /31 has two usable addresses (RFC 3021) and a /32 one. IPv6 has no
//!   broadcast; its network address is the subnet-router anycast address
//!   (RFC 4291, 2.6.1), except that a /127 uses both addresses (RFC 6164) and a
//!   /128 its only one, as their IPv4 counterparts do;
//! - automatic addresses are searched from the first address after the
//!   gateway upwards, then from the start of the subnet, so containers get
//!   `.2`, `.3`... behind a `.1` gateway.
//!
//! [`parse_requested_v4`] and [`parse_requested_v6`] check a user's address
//! against everything that needs no state; [`check_requested_v4`] and
//! [`check_requested_v6`] add the check against the addresses in use.

use crate::error::{CoreError, Result};
use crate::model::{Network, NetworkType};
use ipnet::{Ipv4Net, Ipv6Net};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addresses of one subnet that containers may get, as integers so that
/// IPv4 and IPv6 share one search.
struct Pool {
    /// The lowest usable address.
    first: u128,
    /// How many addresses from `first` on are usable; at least 1.
    len: u128,
    /// The gateway, if the network has one.
    gateway: Option<u128>,
}

impl Pool {
    fn v4(net: &Network, subnet: Ipv4Net) -> Self {
        let network = u128::from(u32::from(subnet.network()));
        let broadcast = u128::from(u32::from(subnet.broadcast()));
        let (first, last) = if subnet.prefix_len() >= 31 {
            (network, broadcast)
        } else if has_broadcast(net.net_type) {
            (network + 1, broadcast - 1)
        } else {
            (network + 1, broadcast)
        };
        Self {
            first,
            len: last - first + 1,
            gateway: net.gateway.map(|g| u128::from(u32::from(g))),
        }
    }

    fn v6(net: &Network, subnet: Ipv6Net) -> Self {
        let network = u128::from(subnet.network());
        let last = u128::from(subnet.broadcast());
        let first = if subnet.prefix_len() >= 127 {
            network
        } else {
            network + 1
        };
        Self {
            first,
            // Cannot overflow: for a /0, `first` is 1 and this is u128::MAX.
            len: last - first + 1,
            gateway: net.gateway6.map(u128::from),
        }
    }

    /// The offset from `first` where the search starts: just after the
    /// gateway, or the start of the subnet when there is no gateway in it.
    fn start(&self) -> u128 {
        match self.gateway {
            Some(gw) if gw >= self.first && gw - self.first < self.len - 1 => gw - self.first + 1,
            _ => 0,
        }
    }

    /// The first address from [`Pool::start`] on, wrapping around, that is
    /// not the gateway and not `is_used`, of whom there are `used_count`.
    ///
    /// At most `used_count + 1` addresses of the pool are taken (the used ones
    /// and the gateway), so `used_count + 2` consecutive addresses always hold
    /// a free one when the pool is that large. The search therefore stops
    /// there, and a /64 costs no more than a /24; a pool smaller than that is
    /// searched whole, so "none" really means exhausted.
    fn find_free(&self, used_count: usize, is_used: impl Fn(u128) -> bool) -> Option<u128> {
        let limit = self.len.min(used_count as u128 + 2);
        let start = self.start();
        (0..limit)
            .map(|i| {
                // (start + i) % len, written so that it cannot overflow on a /0.
                let offset = if i >= self.len - start {
                    i - (self.len - start)
                } else {
                    start + i
                };
                self.first + offset
            })
            .find(|&a| Some(a) != self.gateway && !is_used(a))
    }
}

/// Whether a network's IPv4 subnets keep their broadcast address: all but
/// loopback networks, whose containers each hold a /32.
fn has_broadcast(net_type: NetworkType) -> bool {
    net_type != NetworkType::Loopback
}

/// What reserved role, if any, `ip` plays in `subnet`: its network address,
/// or (when `has_broadcast`) its broadcast address. A /31 and a /32 reserve
/// nothing (RFC 3021).
pub(crate) fn reserved_role_v4(subnet: Ipv4Net, ip: Ipv4Addr, has_broadcast: bool) -> Option<&'static str> {
    if subnet.prefix_len() >= 31 {
        None
    } else if ip == subnet.network() {
        Some("network address")
    } else if has_broadcast && ip == subnet.broadcast() {
        Some("broadcast address")
    } else {
        None
    }
}

/// What reserved role, if any, `ip` plays in `subnet`: its subnet-router
/// anycast address (the network address), except on a /127 or /128
/// (RFC 6164).
pub(crate) fn reserved_role_v6(subnet: Ipv6Net, ip: Ipv6Addr) -> Option<&'static str> {
    (subnet.prefix_len() < 127 && ip == subnet.network()).then_some("subnet-router anycast address")
}

fn subnet_v4(net: &Network) -> Result<Ipv4Net> {
    net.subnet
        .map(|s| s.trunc())
        .ok_or_else(|| CoreError::invalid(format!("network '{}' has no IPv4 subnet", net.name)))
}

fn subnet_v6(net: &Network) -> Result<Ipv6Net> {
    net.subnet6
        .map(|s| s.trunc())
        .ok_or_else(|| CoreError::invalid(format!("network '{}' has no IPv6 subnet", net.name)))
}

impl Pool {
    /// How many addresses containers may hold: the usable ones less the
    /// gateway when it lies among them.
    fn usable(&self) -> u128 {
        let gateway_inside = self
            .gateway
            .is_some_and(|gw| gw >= self.first && gw - self.first < self.len);
        self.len - u128::from(gateway_inside)
    }
}

/// How many IPv4 addresses of `net` containers may hold in all (0 without
/// an IPv4 subnet), for the free count of `cell network show`.
pub fn usable_count_v4(net: &Network) -> u64 {
    subnet_v4(net).map_or(0, |subnet| Pool::v4(net, subnet).usable() as u64)
}

/// How many IPv6 addresses of `net` containers may hold in all (0 without
/// an IPv6 subnet).
pub fn usable_count_v6(net: &Network) -> u128 {
    subnet_v6(net).map_or(0, |subnet| Pool::v6(net, subnet).usable())
}

/// A free IPv4 address of `net`, given the addresses `used` by its endpoints.
///
/// Fails with an invalid error if the network has no IPv4 subnet, and with a
/// conflict if every usable address is taken.
pub fn allocate_v4(net: &Network, used: &HashSet<Ipv4Addr>) -> Result<Ipv4Addr> {
    let subnet = subnet_v4(net)?;
    Pool::v4(net, subnet)
        .find_free(used.len(), |a| used.contains(&v4_from(a)))
        .map(v4_from)
        .ok_or_else(|| {
            CoreError::conflict(format!(
                "no more inet IP's left in network '{}' ({subnet})",
                net.name
            ))
        })
}

/// A free IPv6 address of `net`, given the addresses `used` by its endpoints.
///
/// Fails with an invalid error if the network has no IPv6 subnet, and with a
/// conflict if every usable address is taken.
pub fn allocate_v6(net: &Network, used: &HashSet<Ipv6Addr>) -> Result<Ipv6Addr> {
    let subnet = subnet_v6(net)?;
    Pool::v6(net, subnet)
        .find_free(used.len(), |a| used.contains(&Ipv6Addr::from(a)))
        .map(Ipv6Addr::from)
        .ok_or_else(|| {
            CoreError::conflict(format!(
                "no more inet6 IP's left in network '{}' ({subnet})",
                net.name
            ))
        })
}

fn v4_from(a: u128) -> Ipv4Addr {
    // Pool::v4 only holds addresses that came from a u32.
    Ipv4Addr::from(a as u32)
}

/// Checks that `ip` may be given to a container of `net`: the network has an
/// IPv4 subnet holding it, and it is not the network, broadcast or gateway
/// address. Needs no state.
fn check_static_v4(net: &Network, ip: Ipv4Addr) -> Result<()> {
    let subnet = subnet_v4(net)?;
    if !subnet.contains(&ip) {
        return Err(CoreError::invalid(format!(
            "IP address '{ip}' is outside the subnet {subnet} of network '{}'",
            net.name
        )));
    }
    if let Some(role) = reserved_role_v4(subnet, ip, has_broadcast(net.net_type)) {
        return Err(CoreError::invalid(format!(
            "IP address '{ip}' is the {role} of network '{}' ({subnet})",
            net.name
        )));
    }
    if net.gateway == Some(ip) {
        return Err(CoreError::invalid(format!(
            "IP address '{ip}' is the gateway of network '{}'",
            net.name
        )));
    }
    Ok(())
}

/// The IPv6 counterpart of [`check_static_v4`].
fn check_static_v6(net: &Network, ip: Ipv6Addr) -> Result<()> {
    let subnet = subnet_v6(net)?;
    if !subnet.contains(&ip) {
        return Err(CoreError::invalid(format!(
            "IP address '{ip}' is outside the subnet {subnet} of network '{}'",
            net.name
        )));
    }
    if let Some(role) = reserved_role_v6(subnet, ip) {
        return Err(CoreError::invalid(format!(
            "IP address '{ip}' is the {role} of network '{}' ({subnet})",
            net.name
        )));
    }
    if net.gateway6 == Some(ip) {
        return Err(CoreError::invalid(format!(
            "IP address '{ip}' is the gateway of network '{}'",
            net.name
        )));
    }
    Ok(())
}

/// Checks that a container of `net` may have the IPv4 address `ip` it asked
/// for, given the addresses `used` by the network's endpoints.
///
/// A missing subnet, an address outside it, its network or broadcast address
/// and the gateway are invalid; an address in use is a conflict.
pub fn check_requested_v4(net: &Network, ip: Ipv4Addr, used: &HashSet<Ipv4Addr>) -> Result<()> {
    check_static_v4(net, ip)?;
    if used.contains(&ip) {
        return Err(in_use(net, ip.into()));
    }
    Ok(())
}

/// Checks that a container of `net` may have the IPv6 address `ip` it asked
/// for, given the addresses `used` by the network's endpoints.
///
/// A missing subnet, an address outside it, its subnet-router anycast address
/// and the gateway are invalid; an address in use is a conflict.
pub fn check_requested_v6(net: &Network, ip: Ipv6Addr, used: &HashSet<Ipv6Addr>) -> Result<()> {
    check_static_v6(net, ip)?;
    if used.contains(&ip) {
        return Err(in_use(net, ip.into()));
    }
    Ok(())
}

fn in_use(net: &Network, ip: IpAddr) -> CoreError {
    CoreError::conflict(format!(
        "IP address '{ip}' is already in use in network '{}'",
        net.name
    ))
}

/// Parses the IPv4 address a user asked for on `net` and checks it against
/// everything that needs no state (as [`check_requested_v4`] does, less the
/// addresses in use).
pub fn parse_requested_v4(net: &Network, text: &str) -> Result<Ipv4Addr> {
    let ip = match parse_ip(net, text)? {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => {
            return Err(CoreError::invalid(format!(
                "IP address '{text}' is not an IPv4 address (network '{}')",
                net.name
            )));
        }
    };
    check_static_v4(net, ip)?;
    Ok(ip)
}

/// Parses the IPv6 address a user asked for on `net` and checks it against
/// everything that needs no state (as [`check_requested_v6`] does, less the
/// addresses in use).
pub fn parse_requested_v6(net: &Network, text: &str) -> Result<Ipv6Addr> {
    let ip = match parse_ip(net, text)? {
        IpAddr::V6(ip) => ip,
        IpAddr::V4(_) => {
            return Err(CoreError::invalid(format!(
                "IP address '{text}' is not an IPv6 address (network '{}')",
                net.name
            )));
        }
    };
    check_static_v6(net, ip)?;
    Ok(ip)
}

fn parse_ip(net: &Network, text: &str) -> Result<IpAddr> {
    text.parse().map_err(|_| {
        CoreError::invalid(format!(
            "invalid IP address {} for network '{}'",
            crate::error::quoted(text),
            net.name
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::time::Instant;

    fn network(net_type: NetworkType, subnet: &str, gateway: Option<&str>) -> Network {
        Network {
            id: "0123456789ab".into(),
            name: "testnet".into(),
            net_type,
            interface: "cell0".into(),
            subnet: Some(subnet.parse().unwrap()),
            subnet6: None,
            gateway: gateway.map(|g| g.parse().unwrap()),
            gateway6: None,
            nat: None,
            icc: true,
            internal: false,
            antispoof: true,
        }
    }

    fn network6(net_type: NetworkType, subnet6: &str, gateway6: Option<&str>) -> Network {
        Network {
            subnet: None,
            gateway: None,
            subnet6: Some(subnet6.parse().unwrap()),
            gateway6: gateway6.map(|g| g.parse().unwrap()),
            ..network(net_type, "10.0.0.0/8", None)
        }
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn used4(addrs: &[&str]) -> HashSet<Ipv4Addr> {
        addrs.iter().map(|a| v4(a)).collect()
    }

    fn used6(addrs: &[&str]) -> HashSet<Ipv6Addr> {
        addrs.iter().map(|a| v6(a)).collect()
    }

    /// Allocates until the network is full, marking each address used.
    fn drain4(net: &Network) -> Vec<Ipv4Addr> {
        let mut used = HashSet::new();
        let mut got = Vec::new();
        while let Ok(ip) = allocate_v4(net, &used) {
            assert!(used.insert(ip), "{ip} handed out twice");
            got.push(ip);
        }
        got
    }

    #[test]
    fn loopback_without_gateway_starts_at_one() {
        let net = network(NetworkType::Loopback, "10.2.3.0/24", None);
        assert_eq!(allocate_v4(&net, &HashSet::new()).unwrap(), v4("10.2.3.1"));
        assert_eq!(allocate_v4(&net, &used4(&["10.2.3.1"])).unwrap(), v4("10.2.3.2"));
    }

    #[test]
    fn bridge_starts_after_the_gateway() {
        let net = network(NetworkType::Bridge, "10.2.3.0/24", Some("10.2.3.1"));
        assert_eq!(allocate_v4(&net, &HashSet::new()).unwrap(), v4("10.2.3.2"));
        let used = used4(&["10.2.3.2", "10.2.3.3", "10.2.3.5"]);
        assert_eq!(allocate_v4(&net, &used).unwrap(), v4("10.2.3.4"));
    }

    #[test]
    fn search_wraps_around_to_the_start_of_the_subnet() {
        let net = network(NetworkType::Bridge, "10.2.3.0/24", Some("10.2.3.10"));
        assert_eq!(allocate_v4(&net, &HashSet::new()).unwrap(), v4("10.2.3.11"));
        let above: Vec<String> = (11..=254).map(|i| format!("10.2.3.{i}")).collect();
        let above: Vec<&str> = above.iter().map(String::as_str).collect();
        assert_eq!(allocate_v4(&net, &used4(&above)).unwrap(), v4("10.2.3.1"));
        let mut used = used4(&above);
        used.insert(v4("10.2.3.1"));
        assert_eq!(allocate_v4(&net, &used).unwrap(), v4("10.2.3.2"));
    }

    #[test]
    fn gateway_at_the_top_starts_at_the_bottom() {
        let net = network(NetworkType::Bridge, "10.2.3.0/24", Some("10.2.3.254"));
        assert_eq!(allocate_v4(&net, &HashSet::new()).unwrap(), v4("10.2.3.1"));
    }

    #[test]
    fn bridge_never_hands_out_network_broadcast_or_gateway() {
        let net = network(NetworkType::Bridge, "10.2.3.0/29", Some("10.2.3.1"));
        let got = drain4(&net);
        let want: Vec<Ipv4Addr> = (2..=6).map(|i| v4(&format!("10.2.3.{i}"))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn loopback_may_use_the_broadcast_address() {
        let net = network(NetworkType::Loopback, "10.2.3.0/29", None);
        let got = drain4(&net);
        let want: Vec<Ipv4Addr> = (1..=7).map(|i| v4(&format!("10.2.3.{i}"))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn custom_keeps_the_broadcast_address() {
        let net = network(NetworkType::Custom, "192.168.1.0/30", None);
        assert_eq!(drain4(&net), vec![v4("192.168.1.1"), v4("192.168.1.2")]);
    }

    #[test]
    fn slash_30_is_exhausted_after_one() {
        let net = network(NetworkType::Bridge, "10.2.3.0/30", Some("10.2.3.1"));
        assert_eq!(drain4(&net), vec![v4("10.2.3.2")]);
        let err = allocate_v4(&net, &used4(&["10.2.3.2"])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "no more inet IP's left in network 'testnet' (10.2.3.0/30)"
        );
    }

    #[test]
    fn slash_32_has_its_one_address() {
        let net = network(NetworkType::Loopback, "10.2.3.7/32", None);
        assert_eq!(drain4(&net), vec![v4("10.2.3.7")]);
        let net = network(NetworkType::Bridge, "10.2.3.7/32", None);
        assert_eq!(drain4(&net), vec![v4("10.2.3.7")]);
        check_requested_v4(&net, v4("10.2.3.7"), &HashSet::new()).unwrap();
        let net = network(NetworkType::Bridge, "10.2.3.7/32", Some("10.2.3.7"));
        assert!(drain4(&net).is_empty());
    }

    #[test]
    fn slash_31_has_two_addresses() {
        let net = network(NetworkType::Bridge, "10.2.3.6/31", None);
        assert_eq!(drain4(&net), vec![v4("10.2.3.6"), v4("10.2.3.7")]);
        let net = network(NetworkType::Bridge, "10.2.3.6/31", Some("10.2.3.7"));
        assert_eq!(drain4(&net), vec![v4("10.2.3.6")]);
        check_requested_v4(&net, v4("10.2.3.6"), &HashSet::new()).unwrap();
    }

    #[test]
    fn used_addresses_outside_the_subnet_are_ignored() {
        let net = network(NetworkType::Bridge, "10.2.3.0/30", Some("10.2.3.1"));
        let used = used4(&["10.9.9.9", "10.9.9.8", "10.9.9.7"]);
        assert_eq!(allocate_v4(&net, &used).unwrap(), v4("10.2.3.2"));
    }

    #[test]
    fn missing_subnets_are_invalid() {
        let net = network6(NetworkType::Bridge, "fd00::/64", None);
        let err = allocate_v4(&net, &HashSet::new()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(err.message, "network 'testnet' has no IPv4 subnet");
        let err = check_requested_v4(&net, v4("10.0.0.1"), &HashSet::new()).unwrap_err();
        assert_eq!(err.message, "network 'testnet' has no IPv4 subnet");
        let net = network(NetworkType::Bridge, "10.0.0.0/24", None);
        let err = allocate_v6(&net, &HashSet::new()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(err.message, "network 'testnet' has no IPv6 subnet");
        let err = parse_requested_v6(&net, "fd00::5").unwrap_err();
        assert_eq!(err.message, "network 'testnet' has no IPv6 subnet");
    }

    #[test]
    fn v6_starts_after_the_gateway() {
        let net = network6(NetworkType::Bridge, "fd00::/64", Some("fd00::1"));
        assert_eq!(allocate_v6(&net, &HashSet::new()).unwrap(), v6("fd00::2"));
        assert_eq!(allocate_v6(&net, &used6(&["fd00::2"])).unwrap(), v6("fd00::3"));
    }

    #[test]
    fn v6_skips_the_subnet_router_anycast_address() {
        let net = network6(NetworkType::Loopback, "fd00::/64", None);
        assert_eq!(allocate_v6(&net, &HashSet::new()).unwrap(), v6("fd00::1"));
        // The top of the subnet is usable: IPv6 has no broadcast.
        let net = network6(
            NetworkType::Bridge,
            "fd00::/64",
            Some("fd00::ffff:ffff:ffff:fffe"),
        );
        assert_eq!(
            allocate_v6(&net, &HashSet::new()).unwrap(),
            v6("fd00::ffff:ffff:ffff:ffff")
        );
        let used = used6(&["fd00::ffff:ffff:ffff:ffff"]);
        assert_eq!(allocate_v6(&net, &used).unwrap(), v6("fd00::1"));
    }

    #[test]
    fn v6_slash_126_is_exhausted_after_two() {
        let net = network6(NetworkType::Bridge, "fd00::/126", Some("fd00::1"));
        let mut used = HashSet::new();
        for want in ["fd00::2", "fd00::3"] {
            let ip = allocate_v6(&net, &used).unwrap();
            assert_eq!(ip, v6(want));
            used.insert(ip);
        }
        let err = allocate_v6(&net, &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "no more inet6 IP's left in network 'testnet' (fd00::/126)"
        );
    }

    #[test]
    fn v6_slash_127_and_128() {
        let net = network6(NetworkType::Bridge, "fd00::4/127", None);
        let mut used = HashSet::new();
        for want in ["fd00::4", "fd00::5"] {
            let ip = allocate_v6(&net, &used).unwrap();
            assert_eq!(ip, v6(want));
            used.insert(ip);
        }
        assert!(allocate_v6(&net, &used).is_err());
        let net = network6(NetworkType::Loopback, "fd00::9/128", None);
        assert_eq!(allocate_v6(&net, &HashSet::new()).unwrap(), v6("fd00::9"));
        assert!(allocate_v6(&net, &used6(&["fd00::9"])).is_err());
    }

    #[test]
    fn v6_slash_0_does_not_overflow() {
        let net = network6(
            NetworkType::Bridge,
            "::/0",
            Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        );
        assert_eq!(allocate_v6(&net, &HashSet::new()).unwrap(), v6("::1"));
        let net = network6(
            NetworkType::Bridge,
            "::/0",
            Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
        );
        let used = used6(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]);
        assert_eq!(allocate_v6(&net, &used).unwrap(), v6("::1"));
        let net = network(NetworkType::Bridge, "0.0.0.0/0", Some("255.255.255.254"));
        assert_eq!(allocate_v4(&net, &HashSet::new()).unwrap(), v4("0.0.0.1"));
    }

    #[test]
    fn big_used_sets_are_fast() {
        // 60,000 addresses in a row behind the gateway of a /16...
        let net = network(NetworkType::Bridge, "10.2.0.0/16", Some("10.2.0.1"));
        let used: HashSet<Ipv4Addr> = (2..60_002u32).map(|i| Ipv4Addr::from(0x0a02_0000 + i)).collect();
        let began = Instant::now();
        assert_eq!(
            allocate_v4(&net, &used).unwrap(),
            Ipv4Addr::from(0x0a02_0000u32 + 60_002)
        );
        // ...a full /16 is found out without trouble...
        let full = network(NetworkType::Bridge, "10.2.0.0/16", None);
        let all: HashSet<Ipv4Addr> = (1..65_535u32).map(|i| Ipv4Addr::from(0x0a02_0000 + i)).collect();
        assert_eq!(allocate_v4(&full, &all).unwrap_err().kind, ErrorKind::Conflict);
        // ...and 50,000 addresses in a /64 cost a short walk, not 2^64 steps.
        let net6 = network6(NetworkType::Bridge, "fd00::/64", Some("fd00::1"));
        let base = u128::from(v6("fd00::"));
        let used6: HashSet<Ipv6Addr> = (2..50_002u128).map(|i| Ipv6Addr::from(base + i)).collect();
        assert_eq!(allocate_v6(&net6, &used6).unwrap(), Ipv6Addr::from(base + 50_002));
        assert!(began.elapsed().as_secs() < 5, "took {:?}", began.elapsed());
    }

    #[test]
    fn requested_v4_addresses_are_checked() {
        let net = network(NetworkType::Bridge, "10.2.3.0/24", Some("10.2.3.1"));
        let used = used4(&["10.2.3.5"]);
        check_requested_v4(&net, v4("10.2.3.6"), &used).unwrap();
        check_requested_v4(&net, v4("10.2.3.254"), &used).unwrap();

        let err = check_requested_v4(&net, v4("10.9.9.9"), &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(
            err.message,
            "IP address '10.9.9.9' is outside the subnet 10.2.3.0/24 of network 'testnet'"
        );
        let err = check_requested_v4(&net, v4("10.2.3.0"), &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(
            err.message
                .starts_with("IP address '10.2.3.0' is the network address of"),
            "{err}"
        );
        let err = check_requested_v4(&net, v4("10.2.3.255"), &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(
            err.message
                .starts_with("IP address '10.2.3.255' is the broadcast address of"),
            "{err}"
        );
        let err = check_requested_v4(&net, v4("10.2.3.1"), &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(
            err.message,
            "IP address '10.2.3.1' is the gateway of network 'testnet'"
        );
        let err = check_requested_v4(&net, v4("10.2.3.5"), &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "IP address '10.2.3.5' is already in use in network 'testnet'"
        );
    }

    #[test]
    fn requested_broadcast_is_fine_on_loopback() {
        let net = network(NetworkType::Loopback, "10.2.3.0/24", None);
        check_requested_v4(&net, v4("10.2.3.255"), &HashSet::new()).unwrap();
        let err = check_requested_v4(&net, v4("10.2.3.0"), &HashSet::new()).unwrap_err();
        assert!(err.message.contains("'10.2.3.0' is the network address"), "{err}");
        let net = network(NetworkType::Custom, "10.2.3.0/24", None);
        let err = check_requested_v4(&net, v4("10.2.3.255"), &HashSet::new()).unwrap_err();
        assert!(
            err.message.contains("'10.2.3.255' is the broadcast address"),
            "{err}"
        );
    }

    #[test]
    fn requested_v6_addresses_are_checked() {
        let net = network6(NetworkType::Bridge, "fd00::/64", Some("fd00::1"));
        let used = used6(&["fd00::5"]);
        check_requested_v6(&net, v6("fd00::6"), &used).unwrap();
        check_requested_v6(&net, v6("fd00::ffff:ffff:ffff:ffff"), &used).unwrap();

        let err = check_requested_v6(&net, v6("fd01::1"), &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(
            err.message,
            "IP address 'fd01::1' is outside the subnet fd00::/64 of network 'testnet'"
        );
        let err = check_requested_v6(&net, v6("fd00::"), &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(
            err.message
                .starts_with("IP address 'fd00::' is the subnet-router anycast address"),
            "{err}"
        );
        let err = check_requested_v6(&net, v6("fd00::1"), &used).unwrap_err();
        assert_eq!(
            err.message,
            "IP address 'fd00::1' is the gateway of network 'testnet'"
        );
        let err = check_requested_v6(&net, v6("fd00::5"), &used).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            err.message,
            "IP address 'fd00::5' is already in use in network 'testnet'"
        );
    }

    #[test]
    fn requested_addresses_are_parsed() {
        let net = network(NetworkType::Bridge, "10.2.3.0/24", Some("10.2.3.1"));
        assert_eq!(parse_requested_v4(&net, "10.2.3.5").unwrap(), v4("10.2.3.5"));
        let err = parse_requested_v4(&net, "fd00::5").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("'fd00::5' is not an IPv4 address"), "{err}");
        let err = parse_requested_v4(&net, "10.2.3").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("'10.2.3'"), "{err}");
        let err = parse_requested_v4(&net, "10.2.3.1").unwrap_err();
        assert!(err.message.contains("'10.2.3.1' is the gateway"), "{err}");
        let err = parse_requested_v4(&net, "10.9.9.9").unwrap_err();
        assert!(err.message.contains("'10.9.9.9' is outside"), "{err}");

        let net = network6(NetworkType::Bridge, "fd00::/64", Some("fd00::1"));
        assert_eq!(parse_requested_v6(&net, "fd00::5").unwrap(), v6("fd00::5"));
        let err = parse_requested_v6(&net, "10.2.3.5").unwrap_err();
        assert!(err.message.contains("'10.2.3.5' is not an IPv6 address"), "{err}");
        let err = parse_requested_v6(&net, "fd00:::5").unwrap_err();
        assert!(err.message.contains("'fd00:::5'"), "{err}");
        let err = parse_requested_v6(&net, "fd00::").unwrap_err();
        assert!(
            err.message.contains("'fd00::' is the subnet-router anycast"),
            "{err}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_requested_address_is_checked_without_panic(text in ".*|10\\.2\\.3\\.[0-9]{1,3}") {
            let net = network(NetworkType::Bridge, "10.2.3.0/24", Some("10.2.3.1"));
            match parse_requested_v4(&net, &text) {
                Ok(ip) => {
                    proptest::prop_assert_eq!(ip.to_string(), text);
                    proptest::prop_assert!(ip != v4("10.2.3.0") && ip != v4("10.2.3.255") && ip != v4("10.2.3.1"));
                }
                Err(e) => {
                    proptest::prop_assert!(e.message.contains(&crate::error::quoted(&text)), "{}", e);
                    proptest::prop_assert!(!e.message.chars().any(char::is_control));
                }
            }
        }
    }
}
