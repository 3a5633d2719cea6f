//! Address pools: the ranges networks created without `--subnet` are
//! carved from (potnet's pool, pot's private bridges `-S N`).
//!
//! celld has an IPv4 pool (`pool`, by default pot's [`DEFAULT_POOL`]) and
//! an IPv6 one (`pool6`, a ULA /48 as RFC 4193 describes: `fd` and a random
//! 40-bit global id, [`ula_pool6`]). A network without `--subnet` takes the
//! first free aligned /24 of the pool ([`DEFAULT_BLOCK_PREFIX_V4`]), or with
//! `--size N` the smallest block that holds N containers beside the
//! network, gateway and broadcast addresses ([`prefix_for_size`]); with
//! `--subnet6 auto` the first free /64 of the pool6. "Free" means
//! overlapping no other network and nothing the host holds
//! ([`carve_v4`], [`carve_v6`]: the same predicate as
//! [`crate::netspec::check_overlap`] and
//! [`crate::netspec::check_host_overlap`], so a carved block passes both).
//!
//! Everything here is pure: the engine passes the taken prefixes it read
//! from the store and the kernel, under its network-create lock, so two
//! creations never carve the same block.

use crate::error::{CoreError, Result, quoted};
use crate::limits::{SUBNET_PREFIX_MIN_V4, SUBNET_PREFIX_MIN_V6};
use crate::netspec::{overlaps, reserved_range};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// pot's pool (potnet's default `10.192.0.0/10`).
pub const DEFAULT_POOL: &str = "10.192.0.0/10";

/// The block a network without `--subnet` or `--size` takes: a /24, as
/// potnet hands out.
pub const DEFAULT_BLOCK_PREFIX_V4: u8 = 24;

/// The block `--subnet6 auto` takes: a /64, the only size SLAAC and most
/// IPv6 tools expect of a LAN.
pub const BLOCK_PREFIX_V6: u8 = 64;

/// The smallest block `--size` gives: a /30 holds network, gateway, one
/// container and broadcast.
pub const SMALLEST_BLOCK_PREFIX_V4: u8 = 30;

/// A ULA pool6's prefix length (RFC 4193, 3.1: `fd` + 40-bit global id).
pub const POOL6_PREFIX: u8 = 48;

/// celld's two pools, after their checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pools {
    /// The IPv4 pool.
    pub pool: Ipv4Net,
    /// The IPv6 pool.
    pub pool6: Ipv6Net,
}

/// Parses the `pool` key of celld's config: an IPv4 CIDR without host
/// bits, no larger than a /8 and no smaller than a /30, over no reserved
/// range. Each error names the value.
pub fn parse_pool(text: &str) -> Result<Ipv4Net> {
    let bad = |why: String| CoreError::invalid(format!("invalid pool {}: {why}", quoted(text)));
    let net: Ipv4Net = text
        .parse()
        .map_err(|_| bad(format!("expected an IPv4 CIDR such as {DEFAULT_POOL}")))?;
    if net.trunc() != net {
        return Err(bad(format!("host bits are set (did you mean {}?)", net.trunc())));
    }
    if net.prefix_len() < SUBNET_PREFIX_MIN_V4 {
        return Err(bad(format!(
            "the prefix /{} is shorter than /{SUBNET_PREFIX_MIN_V4}",
            net.prefix_len()
        )));
    }
    if net.prefix_len() > SMALLEST_BLOCK_PREFIX_V4 {
        return Err(bad(format!(
            "the prefix /{} leaves no room for a network (at most /{SMALLEST_BLOCK_PREFIX_V4})",
            net.prefix_len()
        )));
    }
    if let Some((range, what)) = reserved_range(IpNet::V4(net)) {
        return Err(bad(format!("it overlaps {range}, {what}")));
    }
    Ok(net)
}

/// Parses the `pool6` key of celld's config: an IPv6 CIDR without host
/// bits, from /16 to /64, over no reserved range.
pub fn parse_pool6(text: &str) -> Result<Ipv6Net> {
    let bad = |why: String| CoreError::invalid(format!("invalid pool6 {}: {why}", quoted(text)));
    let net: Ipv6Net = text
        .parse()
        .map_err(|_| bad("expected an IPv6 CIDR such as fd12:3456:789a::/48".into()))?;
    if net.trunc() != net {
        return Err(bad(format!("host bits are set (did you mean {}?)", net.trunc())));
    }
    if net.prefix_len() < SUBNET_PREFIX_MIN_V6 || net.prefix_len() > BLOCK_PREFIX_V6 {
        return Err(bad(format!(
            "the prefix /{} is not between /{SUBNET_PREFIX_MIN_V6} and /{BLOCK_PREFIX_V6}",
            net.prefix_len()
        )));
    }
    if let Some((range, what)) = reserved_range(IpNet::V6(net)) {
        return Err(bad(format!("it overlaps {range}, {what}")));
    }
    Ok(net)
}

/// The ULA /48 of a 40-bit global id (its low 40 bits are used):
/// `fdXX:XXXX:XXXX::/48` (RFC 4193, 3.1).
pub fn ula_pool6(global_id: u64) -> Ipv6Net {
    let id = u128::from(global_id & 0xff_ffff_ffff);
    let addr = (0xfd_u128 << 120) | (id << 80);
    Ipv6Net::new(Ipv6Addr::from(addr), POOL6_PREFIX).expect("48 is a valid prefix")
}

/// A random 40-bit global id for [`ula_pool6`]. RFC 4193 (3.2) asks for a
/// pseudo-random one so that two sites' ULAs are unlikely to clash; celld
/// draws it once and keeps it in its store.
pub fn random_global_id() -> u64 {
    use rand::RngExt;
    rand::rng().random_range(0..1u64 << 40)
}

/// The prefix length of the smallest IPv4 block that holds `size`
/// containers beside its network, gateway and broadcast addresses: pot's
/// `-S 4` needs 7 addresses, so a /29. `0` is invalid, and so is a size
/// that needs more than a /8.
pub fn prefix_for_size(size: u32) -> Result<u8> {
    if size == 0 {
        return Err(CoreError::invalid(
            "invalid size '0': a network is sized for at least one container",
        ));
    }
    let needed = u64::from(size) + 3;
    // The smallest power of two >= needed, as a number of host bits.
    let host_bits = 64 - (needed - 1).leading_zeros();
    let prefix = 32_i64 - i64::from(host_bits);
    if prefix < i64::from(SUBNET_PREFIX_MIN_V4) {
        return Err(CoreError::invalid(format!(
            "invalid size '{size}': it needs more than a /{SUBNET_PREFIX_MIN_V4}, the largest IPv4 network cell accepts"
        )));
    }
    Ok((prefix as u8).min(SMALLEST_BLOCK_PREFIX_V4))
}

/// The first aligned /`prefix` of `pool` that overlaps none of `taken`
/// (other networks' subnets, the host's addresses and routes; default
/// routes are skipped, as [`crate::netspec::check_host_overlap`] does), or
/// `None` when there is none: the pool is exhausted for that size.
pub fn carve_v4(pool: Ipv4Net, prefix: u8, taken: &[IpNet]) -> Option<Ipv4Net> {
    let taken = ranges(taken, |p| match p {
        IpNet::V4(n) => Some((
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        )),
        IpNet::V6(_) => None,
    });
    let start = carve(
        u128::from(u32::from(pool.network())),
        pool.prefix_len(),
        32,
        prefix,
        &taken,
    )?;
    Ipv4Net::new((start as u32).into(), prefix).ok()
}

/// [`carve_v4`] for IPv6.
pub fn carve_v6(pool: Ipv6Net, prefix: u8, taken: &[IpNet]) -> Option<Ipv6Net> {
    let taken = ranges(taken, |p| match p {
        IpNet::V6(n) => Some((u128::from(n.network()), u128::from(n.broadcast()))),
        IpNet::V4(_) => None,
    });
    let start = carve(u128::from(pool.network()), pool.prefix_len(), 128, prefix, &taken)?;
    Ipv6Net::new(start.into(), prefix).ok()
}

/// The first and last address of each taken prefix of one family, default
/// routes left out.
fn ranges(taken: &[IpNet], bounds: impl Fn(&IpNet) -> Option<(u128, u128)>) -> Vec<(u128, u128)> {
    taken
        .iter()
        .filter(|p| p.prefix_len() > 0)
        .filter_map(|p| bounds(&p.trunc()))
        .collect()
}

/// The start of the first block of `2^(bits - prefix)` addresses, aligned
/// to its size, inside the pool and clear of every taken range. Each
/// taken range can push the candidate past itself at most once, so this
/// takes at most `taken.len() + 1` rounds whatever the pool's size.
fn carve(pool_start: u128, pool_prefix: u8, bits: u8, prefix: u8, taken: &[(u128, u128)]) -> Option<u128> {
    if prefix < pool_prefix || prefix > bits {
        return None;
    }
    let block = 1u128.checked_shl(u32::from(bits - prefix))?;
    let pool_len = 1u128.checked_shl(u32::from(bits - pool_prefix))?;
    let pool_last = pool_start.checked_add(pool_len - 1)?;
    let mut candidate = pool_start;
    loop {
        let last = candidate.checked_add(block - 1)?;
        if last > pool_last {
            return None;
        }
        match taken
            .iter()
            .find(|(first, end)| *first <= last && *end >= candidate)
        {
            None => return Some(candidate),
            Some((_, end)) => {
                // The next aligned block after the taken range.
                let next = end.checked_add(1)?;
                candidate = next.checked_add(block - 1)? / block * block;
            }
        }
    }
}

/// Whether `subnet` overlaps `pool` (either family).
pub fn in_pool(subnet: IpNet, pools: &Pools) -> bool {
    overlaps(subnet, IpNet::V4(pools.pool)) || overlaps(subnet, IpNet::V6(pools.pool6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn sizes_give_the_smallest_block() {
        // pot's `create-private-bridge -S 4` gives a /29.
        assert_eq!(prefix_for_size(4).unwrap(), 29);
        assert_eq!(prefix_for_size(5).unwrap(), 29);
        assert_eq!(prefix_for_size(6).unwrap(), 28);
        assert_eq!(prefix_for_size(1).unwrap(), 30);
        assert_eq!(prefix_for_size(2).unwrap(), 29);
        assert_eq!(prefix_for_size(253).unwrap(), 24);
        assert_eq!(prefix_for_size(254).unwrap(), 23);
        assert_eq!(prefix_for_size((1 << 24) - 3).unwrap(), 8);
        let err = prefix_for_size(0).unwrap_err();
        assert_eq!(
            err.message,
            "invalid size '0': a network is sized for at least one container"
        );
        let err = prefix_for_size((1 << 24) - 2).unwrap_err();
        assert!(err.message.starts_with("invalid size '16777214': "), "{err}");
        assert!(prefix_for_size(u32::MAX).is_err());
    }

    #[test]
    fn carving_takes_the_first_free_aligned_block() {
        let pool = v4("10.192.0.0/10");
        assert_eq!(carve_v4(pool, 24, &[]), Some(v4("10.192.0.0/24")));
        let taken = nets(&["10.192.0.0/24", "10.192.1.0/29", "10.0.0.0/8"]);
        // 10.0.0.0/8 holds the pool: nothing is free.
        assert_eq!(carve_v4(pool, 24, &taken), None);
        let taken = nets(&["10.192.0.0/24", "10.192.1.0/29"]);
        assert_eq!(carve_v4(pool, 24, &taken), Some(v4("10.192.2.0/24")));
        assert_eq!(carve_v4(pool, 29, &taken), Some(v4("10.192.1.8/29")));
        assert_eq!(carve_v4(pool, 30, &taken), Some(v4("10.192.1.8/30")));
        // A host address with its prefix takes the whole prefix.
        let taken = nets(&["10.192.0.77/16", "0.0.0.0/0", "::/0"]);
        assert_eq!(carve_v4(pool, 24, &taken), Some(v4("10.193.0.0/24")));
        // Other families do not count.
        assert_eq!(
            carve_v4(pool, 24, &nets(&["fd00::/8"])),
            Some(v4("10.192.0.0/24"))
        );
    }

    #[test]
    fn a_small_pool_is_exhausted_and_says_so_with_none() {
        let pool = v4("10.250.0.0/22");
        let mut taken = Vec::new();
        for want in ["10.250.0.0/24", "10.250.1.0/24", "10.250.2.0/24", "10.250.3.0/24"] {
            let got = carve_v4(pool, 24, &taken).unwrap();
            assert_eq!(got, v4(want));
            taken.push(IpNet::V4(got));
        }
        assert_eq!(carve_v4(pool, 24, &taken), None);
        // A block larger than the pool never fits.
        assert_eq!(carve_v4(pool, 21, &[]), None);
        assert_eq!(carve_v4(pool, 22, &[]), Some(pool));
    }

    #[test]
    fn carved_blocks_never_overlap_what_was_taken() {
        let pool = v4("10.192.0.0/16");
        let mut taken = nets(&["10.192.3.0/24", "10.192.0.16/28", "192.168.0.0/16"]);
        for prefix in [24, 29, 30, 26, 24, 28, 30, 25] {
            let got = IpNet::V4(carve_v4(pool, prefix, &taken).unwrap());
            assert!(
                !taken.iter().any(|t| overlaps(*t, got)),
                "{got} overlaps {taken:?}"
            );
            assert_eq!(got.prefix_len(), prefix);
            assert_eq!(got.trunc(), got, "{got} is aligned");
            taken.push(got);
        }
    }

    #[test]
    fn ipv6_blocks_are_64s_of_the_ula() {
        let pool6 = ula_pool6(0x12_3456_789a);
        assert_eq!(pool6, "fd12:3456:789a::/48".parse::<Ipv6Net>().unwrap());
        assert_eq!(ula_pool6(u64::MAX).to_string(), "fdff:ffff:ffff::/48");
        assert!(random_global_id() < (1 << 40));
        let first = carve_v6(pool6, 64, &[]).unwrap();
        assert_eq!(first.to_string(), "fd12:3456:789a::/64");
        let second = carve_v6(pool6, 64, &[IpNet::V6(first)]).unwrap();
        assert_eq!(second.to_string(), "fd12:3456:789a:1::/64");
        let all = nets(&["fd12:3456:789a::/48"]);
        assert_eq!(carve_v6(pool6, 64, &all), None);
    }

    #[test]
    fn pools_are_checked_naming_the_value() {
        assert_eq!(parse_pool(DEFAULT_POOL).unwrap(), v4("10.192.0.0/10"));
        for (text, why) in [
            ("x", "invalid pool 'x': expected an IPv4 CIDR"),
            ("10.192.0.1/10", "host bits are set (did you mean 10.192.0.0/10?)"),
            ("10.0.0.0/7", "the prefix /7 is shorter than /8"),
            ("10.0.0.0/31", "the prefix /31 leaves no room"),
            ("127.0.0.0/16", "it overlaps 127.0.0.0/8, the loopback range"),
            ("fd00::/48", "invalid pool 'fd00::/48'"),
        ] {
            let err = parse_pool(text).unwrap_err();
            assert!(err.message.contains(why), "{text}: {err}");
        }
        assert_eq!(parse_pool6("fd00:1::/48").unwrap().to_string(), "fd00:1::/48");
        for (text, why) in [
            ("10.0.0.0/8", "invalid pool6 '10.0.0.0/8': expected an IPv6 CIDR"),
            ("fd00::/80", "the prefix /80 is not between /16 and /64"),
            ("fe80::/16", "the link-local range"),
        ] {
            let err = parse_pool6(text).unwrap_err();
            assert!(err.message.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn in_pool_looks_at_both_families() {
        let pools = Pools {
            pool: v4("10.192.0.0/10"),
            pool6: "fd00:1::/48".parse().unwrap(),
        };
        assert!(in_pool("10.200.0.0/24".parse().unwrap(), &pools));
        assert!(in_pool("10.0.0.0/8".parse().unwrap(), &pools));
        assert!(!in_pool("10.2.3.0/24".parse().unwrap(), &pools));
        assert!(in_pool("fd00:1:0:5::/64".parse().unwrap(), &pools));
        assert!(!in_pool("fd00:2::/64".parse().unwrap(), &pools));
    }
}
