//! Published ports: the `-p` syntax and the mappings it stands for.
//!
//! `-p [HOST_IP:][HOST_PORT][:CONTAINER_PORT][/tcp|udp]` ([`PublishSpec`])
//! names one mapping or a range of them; [`PublishSpec::mappings`] expands
//! it into [`PortSpec`]s, one host port to one container port each, which
//! is what the store records and the kernel forwards. An empty or `0`
//! `HOST_PORT` means "pick a free one" (pot's `export-ports -e 80`): such a
//! mapping has host port [`AUTO_PORT`] until the engine chooses one.
//! `CONTAINER_PORT` defaults to `HOST_PORT` (`-p 8080` is 8080 -> 8080, as
//! klee reads it; Docker's "any host port" is `-p :8080` here).

use crate::error::{CoreError, Result, quoted};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The host port of a mapping whose host port is still to be chosen.
pub const AUTO_PORT: u16 = 0;

/// The most mappings one `-p` may stand for: a range is expanded into one
/// row, one reserved socket and one set element per port, so a typo such as
/// `1-65535` must not reserve the whole host.
pub const RANGE_MAX: usize = 1024;

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl FromStr for Protocol {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            other => Err(CoreError::invalid(format!(
                "unknown protocol {} (expected tcp or udp)",
                quoted(other)
            ))),
        }
    }
}

/// One published port: one host port forwarded to one container port.
/// Stored as JSON of this shape (`public_ports`), so it keeps its fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// The host address it is published on; all addresses when absent.
    pub host_ip: Option<IpAddr>,
    /// The port on the host; [`AUTO_PORT`] until one is chosen.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl PortSpec {
    /// Whether this mapping and `other` cannot both be published: the same
    /// host port and protocol on the same address, or on all addresses on
    /// one side (a wildcard covers every specific address).
    pub fn clashes_with(&self, other: &PortSpec) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }

    /// `HOST_PORT/PROTO`, or `ADDR:HOST_PORT/PROTO` when bound to one
    /// address: how messages name a published host port.
    pub fn host_side(&self) -> String {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:{}/{}", self.host_port, self.protocol),
            Some(ip) => format!("{ip}:{}/{}", self.host_port, self.protocol),
            None => format!("{}/{}", self.host_port, self.protocol),
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(f, "{}:{}/{}", self.host_port, self.container_port, self.protocol)
    }
}

/// A single mapping with a fixed host port, e.g. `8080:80/tcp`; ranges and
/// automatic host ports are [`PublishSpec`]'s.
impl FromStr for PortSpec {
    type Err = CoreError;

    fn from_str(spec: &str) -> Result<Self> {
        let publish: PublishSpec = spec.parse()?;
        match publish.mappings().as_slice() {
            [one] if one.host_port != AUTO_PORT => Ok(one.clone()),
            _ => Err(CoreError::invalid(format!(
                "invalid port spec {}: expected one port with a host port",
                quoted(spec)
            ))),
        }
    }
}

/// An inclusive range of ports, `start` at most `end`; one port is a range
/// of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// The first port.
    pub start: u16,
    /// The last port.
    pub end: u16,
}

impl PortRange {
    /// How many ports it holds.
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Never: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Its ports, in order.
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// `FIRST-LAST` (or one port), as `port_range` in celld.toml is written.
impl FromStr for PortRange {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self> {
        parse_range(text, "host")
            .map_err(|why| CoreError::invalid(format!("invalid port range {}: {why}", quoted(text))))
    }
}

/// One `-p` argument, parsed: see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublishSpec {
    /// The host address; all addresses when absent.
    pub host_ip: Option<IpAddr>,
    /// The host ports; absent: chosen by celld (an empty or `0` HOST_PORT).
    pub host_ports: Option<PortRange>,
    /// The container ports; absent: the same as the host ports (no
    /// `:CONTAINER_PORT` was written). Never absent with `host_ports`.
    pub container_ports: Option<PortRange>,
    /// TCP or UDP (TCP when not written).
    pub protocol: Protocol,
}

impl PublishSpec {
    /// The container ports the spec publishes.
    pub fn container_range(&self) -> PortRange {
        self.container_ports
            .or(self.host_ports)
            .expect("a parsed spec names its container ports or its host ports")
    }

    /// The mappings, one per port of the range, in order; host port
    /// [`AUTO_PORT`] where celld is to choose it.
    pub fn mappings(&self) -> Vec<PortSpec> {
        let container = self.container_range();
        container
            .ports()
            .enumerate()
            .map(|(i, container_port)| PortSpec {
                host_ip: self.host_ip,
                host_port: self.host_ports.map_or(AUTO_PORT, |h| h.start + i as u16),
                container_port,
                protocol: self.protocol,
            })
            .collect()
    }

    /// Whether `published` is one of the mappings this spec names, as
    /// `cell port rm` reads it: a spec without `:CONTAINER_PORT` names host
    /// ports (whatever they forward to), one with an automatic host port
    /// names container ports, and a host address, when written, must match.
    pub fn selects(&self, published: &PortSpec) -> bool {
        if published.protocol != self.protocol || self.host_ip.is_some_and(|ip| published.host_ip != Some(ip))
        {
            return false;
        }
        match (self.host_ports, self.container_ports) {
            (Some(host), None) => host.ports().any(|p| p == published.host_port),
            (None, Some(_)) => self
                .mappings()
                .iter()
                .any(|m| m.container_port == published.container_port),
            (Some(_), Some(_)) => self
                .mappings()
                .iter()
                .any(|m| m.host_port == published.host_port && m.container_port == published.container_port),
            (None, None) => false,
        }
    }
}

impl FromStr for PublishSpec {
    type Err = CoreError;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |why: String| CoreError::invalid(format!("invalid port spec {}: {why}", quoted(spec)));
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((rest, proto)) => (rest, proto.parse().map_err(|e: CoreError| bad(e.message))?),
            None => (spec, Protocol::Tcp),
        };
        let (host_ip, ports) = split_host_ip(rest).map_err(bad)?;
        let (host, container) = match ports.split_once(':') {
            Some((host, container)) => (host, Some(container)),
            None => (ports, None),
        };
        if host.is_empty() && container.is_none() {
            return Err(bad("no port given".into()));
        }
        let host_ports = match host {
            "" | "0" => None,
            text => Some(parse_range(text, "host").map_err(bad)?),
        };
        let container_ports = match container {
            None => None,
            Some("") => return Err(bad("the container port after ':' is missing".into())),
            Some(text) => Some(parse_range(text, "container").map_err(bad)?),
        };
        if host_ports.is_none() && container_ports.is_none() {
            return Err(bad(
                "a host port chosen by cell needs a container port (:PORT)".into()
            ));
        }
        if let (Some(h), Some(c)) = (host_ports, container_ports)
            && h.len() != c.len()
        {
            return Err(bad(format!(
                "the host ports {h} and the container ports {c} differ in number ({} and {})",
                h.len(),
                c.len()
            )));
        }
        Ok(Self {
            host_ip,
            host_ports,
            container_ports,
            protocol,
        })
    }
}

impl fmt::Display for PublishSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        if let Some(host) = self.host_ports {
            write!(f, "{host}")?;
        }
        if let Some(container) = self.container_ports {
            write!(f, ":{container}")?;
        }
        write!(f, "/{}", self.protocol)
    }
}

/// Splits `[HOST_IP:]PORTS` into the address and the ports. An IPv6
/// address is written in brackets (`[::1]:8080:80`); an IPv4 address is
/// told from a host port by its dots (`127.0.0.1:8080` is 8080 on
/// 127.0.0.1, `8080:80` is 8080 -> 80).
fn split_host_ip(rest: &str) -> std::result::Result<(Option<IpAddr>, &str), String> {
    if let Some(after) = rest.strip_prefix('[') {
        let (ip, ports) = after
            .split_once("]:")
            .ok_or_else(|| "unclosed '[' around the host address".to_string())?;
        let ip: std::net::Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{} is not an IPv6 address", quoted(ip)))?;
        return Ok((Some(IpAddr::V6(ip)), ports));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let ip_part = match parts.len() {
        1 => return Ok((None, rest)),
        2 if !parts[0].contains('.') => return Ok((None, rest)),
        2 | 3 => parts[0],
        _ => return Err("too many ':' (an IPv6 host address goes in brackets: [::1]:8080:80)".into()),
    };
    let ip: std::net::Ipv4Addr = ip_part
        .parse()
        .map_err(|_| format!("{} is not an IPv4 address", quoted(ip_part)))?;
    Ok((Some(IpAddr::V4(ip)), &rest[ip_part.len() + 1..]))
}

/// `PORT` or `FIRST-LAST`; `side` (host, container) names it in errors.
fn parse_range(text: &str, side: &str) -> std::result::Result<PortRange, String> {
    let port = |s: &str| -> std::result::Result<u16, String> {
        // Digits only: u16's parser would take "+80".
        match s.parse::<u16>() {
            Ok(p) if p > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
            _ => Err(format!("{} is not a {side} port (1-65535)", quoted(s))),
        }
    };
    let range = match text.split_once('-') {
        Some((first, last)) => {
            let (start, end) = (port(first)?, port(last)?);
            if start > end {
                return Err(format!("the {side} port range {} is backwards", quoted(text)));
            }
            PortRange { start, end }
        }
        None => {
            let p = port(text)?;
            PortRange { start: p, end: p }
        }
    };
    if range.len() > RANGE_MAX {
        return Err(format!(
            "the {side} port range {} holds {} ports, more than {RANGE_MAX}",
            quoted(text),
            range.len()
        ));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(spec: &str) -> (Option<IpAddr>, u16, u16, Protocol) {
        let mappings = spec.parse::<PublishSpec>().unwrap().mappings();
        assert_eq!(mappings.len(), 1, "{spec}");
        let p = &mappings[0];
        (p.host_ip, p.host_port, p.container_port, p.protocol)
    }

    #[test]
    fn parses_all_forms() {
        let v4 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(one("8080"), (None, 8080, 8080, Protocol::Tcp));
        assert_eq!(one("8080:80/udp"), (None, 8080, 80, Protocol::Udp));
        assert_eq!(one(":80"), (None, AUTO_PORT, 80, Protocol::Tcp));
        assert_eq!(one("0:80"), (None, AUTO_PORT, 80, Protocol::Tcp));
        assert_eq!(
            one("127.0.0.1:8080:80"),
            (v4("127.0.0.1"), 8080, 80, Protocol::Tcp)
        );
        assert_eq!(
            one("127.0.0.1:8080"),
            (v4("127.0.0.1"), 8080, 8080, Protocol::Tcp)
        );
        assert_eq!(
            one("127.0.0.1::80"),
            (v4("127.0.0.1"), AUTO_PORT, 80, Protocol::Tcp)
        );
        assert_eq!(one("[::1]:8080:80/tcp"), (v4("::1"), 8080, 80, Protocol::Tcp));
        assert_eq!(
            one("[2001:db8::2]:8080"),
            (v4("2001:db8::2"), 8080, 8080, Protocol::Tcp)
        );
        assert_eq!(one("[::1]::53/udp"), (v4("::1"), AUTO_PORT, 53, Protocol::Udp));
        let fixed: PortSpec = "[::1]:8080:80/tcp".parse().unwrap();
        assert_eq!(fixed.to_string(), "[::1]:8080:80/tcp");
    }

    #[test]
    fn ranges_map_onto_ranges_of_the_same_size() {
        let spec: PublishSpec = "8000-8002:9000-9002/udp".parse().unwrap();
        let pairs: Vec<(u16, u16)> = spec
            .mappings()
            .iter()
            .map(|m| (m.host_port, m.container_port))
            .collect();
        assert_eq!(pairs, [(8000, 9000), (8001, 9001), (8002, 9002)]);
        let same: PublishSpec = "7000-7001".parse().unwrap();
        assert_eq!(same.mappings().len(), 2);
        assert_eq!(same.mappings()[1].container_port, 7001);
        let auto: PublishSpec = ":5000-5002".parse().unwrap();
        assert!(auto.mappings().iter().all(|m| m.host_port == AUTO_PORT));
        assert_eq!(auto.to_string(), ":5000-5002/tcp");
    }

    #[test]
    fn refuses_malformed_specs_naming_them() {
        for (bad, why) in [
            ("", "no port given"),
            ("0", "needs a container port"),
            ("80:0", "'0' is not a container port"),
            ("70000", "'70000' is not a host port"),
            ("abc", "'abc' is not a host port"),
            ("+80", "'+80' is not a host port"),
            ("80/sctp", "unknown protocol 'sctp'"),
            ("80/", "unknown protocol ''"),
            ("a:b", "'a' is not a host port"),
            ("1.2.3:80:80", "'1.2.3' is not an IPv4 address"),
            ("1:2:3:4", "too many ':'"),
            ("::1:80:80", "too many ':'"),
            ("[::1:80", "unclosed '['"),
            ("[1.2.3.4]:80", "'1.2.3.4' is not an IPv6 address"),
            ("80:", "container port after ':' is missing"),
            ("8000-8010:9000-9005", "differ in number (11 and 6)"),
            ("9000-8000", "range '9000-8000' is backwards"),
            ("1-2000", "more than 1024"),
        ] {
            let err = bad.parse::<PublishSpec>().unwrap_err();
            assert!(
                err.message.starts_with(&format!("invalid port spec '{bad}': ")),
                "{bad}: {err}"
            );
            assert!(err.message.contains(why), "{bad}: {err}");
        }
        let err = "80\n:80".parse::<PublishSpec>().unwrap_err();
        assert_eq!(
            err.message,
            r#"invalid port spec "80\n:80": "80\n" is not a host port (1-65535)"#
        );
    }

    #[test]
    fn wildcards_clash_with_every_address() {
        let p = |s: &str| s.parse::<PortSpec>().unwrap();
        assert!(p("8080:80").clashes_with(&p("127.0.0.1:8080:81")));
        assert!(p("[::1]:8080:80").clashes_with(&p("8080:90")));
        assert!(!p("127.0.0.1:8080:80").clashes_with(&p("127.0.0.2:8080:80")));
        assert!(!p("8080:80/udp").clashes_with(&p("8080:80/tcp")));
        assert!(!p("8080:80").clashes_with(&p("8081:80")));
    }

    #[test]
    fn removal_specs_select_what_they_name() {
        let published = "127.0.0.1:8080:80".parse::<PortSpec>().unwrap();
        let selects = |s: &str| s.parse::<PublishSpec>().unwrap().selects(&published);
        assert!(selects("8080"));
        assert!(selects("8080:80"));
        assert!(selects("127.0.0.1:8080:80"));
        assert!(selects(":80"));
        assert!(selects("8000-8090"));
        assert!(!selects("8080/udp"));
        assert!(!selects("8080:81"));
        assert!(!selects("127.0.0.2:8080"));
    }

    fn any_spec() -> impl Strategy<Value = PortSpec> {
        (
            proptest::option::of(any::<IpAddr>()),
            1..=u16::MAX,
            1..=u16::MAX,
            prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
        )
            .prop_map(|(host_ip, host_port, container_port, protocol)| PortSpec {
                host_ip,
                host_port,
                container_port,
                protocol,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn any_text_parses_or_names_itself(text in ".*") {
            if let Err(e) = text.parse::<PublishSpec>() {
                prop_assert!(e.message.contains(&quoted(&text)), "{}", e);
                prop_assert!(!e.message.chars().any(char::is_control));
            }
        }

        #[test]
        fn port_like_text_parses_or_names_itself(text in "(\\[[0-9a-f:]{0,8}\\]:|[0-9.]{0,9}:)?[0-9]{0,6}(-[0-9]{0,5})?(:[0-9]{0,6}(-[0-9]{0,5})?)?(/[a-z]{0,4})?") {
            match text.parse::<PublishSpec>() {
                Err(e) => prop_assert!(e.message.contains(&quoted(&text)), "{}", e),
                Ok(spec) => {
                    let mappings = spec.mappings();
                    prop_assert!(!mappings.is_empty() && mappings.len() <= RANGE_MAX);
                    prop_assert!(mappings.iter().all(|m| m.container_port > 0));
                    let again: PublishSpec = spec.to_string().parse().unwrap();
                    prop_assert_eq!(again.mappings(), mappings);
                }
            }
        }

        #[test]
        fn specs_round_trip(spec in any_spec()) {
            let again: PortSpec = spec.to_string().parse().unwrap();
            prop_assert_eq!(again, spec);
        }
    }
}
