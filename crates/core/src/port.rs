//! Published port specs: `[HOST_IP:]HOST_PORT[:CONTAINER_PORT][/tcp|udp]`.

use crate::error::{CoreError, Result, quoted};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// The host address it is published on; all addresses when absent.
    pub host_ip: Option<IpAddr>,
    /// The port on the host.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
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

impl FromStr for PortSpec {
    type Err = CoreError;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |why: &str| CoreError::invalid(format!("invalid port spec {}: {why}", quoted(spec)));
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Protocol::Tcp),
            Some((rest, "udp")) => (rest, Protocol::Udp),
            Some((_, other)) => {
                return Err(bad(&format!(
                    "unknown protocol {} (expected tcp or udp)",
                    quoted(other)
                )));
            }
            None => (spec, Protocol::Tcp),
        };
        // An IPv6 host address is written in brackets: [::1]:8080:80.
        let (host_ip, ports) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, ports) = after
                .split_once("]:")
                .ok_or_else(|| bad("unclosed '[' around the host address"))?;
            let ip = ip
                .parse()
                .map_err(|_| bad(&format!("{} is not an IP address", quoted(ip))))?;
            (Some(ip), ports)
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.len() {
                1 | 2 => (None, rest),
                3 => {
                    let ip = parts[0]
                        .parse()
                        .map_err(|_| bad(&format!("{} is not an IP address", quoted(parts[0]))))?;
                    (Some(ip), &rest[parts[0].len() + 1..])
                }
                _ => return Err(bad("too many ':'")),
            }
        };
        let port = |s: &str| -> Result<u16> {
            match s.parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(bad(&format!("{} is not a port number (1-65535)", quoted(s)))),
            }
        };
        let (host_port, container_port) = match ports.split_once(':') {
            Some((h, c)) => (port(h)?, port(c)?),
            None => {
                let p = port(ports)?;
                (p, p)
            }
        };
        Ok(Self {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_all_forms() {
        let p: PortSpec = "8080".parse().unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.protocol),
            (None, 8080, 8080, Protocol::Tcp)
        );
        let p: PortSpec = "8080:80/udp".parse().unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol),
            (8080, 80, Protocol::Udp)
        );
        let p: PortSpec = "127.0.0.1:8080:80".parse().unwrap();
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        let p: PortSpec = "[::1]:8080:80/tcp".parse().unwrap();
        assert_eq!(p.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p.to_string(), "[::1]:8080:80/tcp");
    }

    #[test]
    fn refuses_malformed_specs() {
        for bad in [
            "",
            "0",
            "70000",
            "80/sctp",
            "a:b",
            "1.2.3:80:80",
            "1:2:3:4",
            "[::1:80",
            "80:",
        ] {
            let err = bad.parse::<PortSpec>().unwrap_err();
            assert!(err.message.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
        let err = "80\n:80".parse::<PortSpec>().unwrap_err();
        assert_eq!(
            err.message,
            r#"invalid port spec "80\n:80": "80\n" is not a port number (1-65535)"#
        );
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
            if let Err(e) = text.parse::<PortSpec>() {
                prop_assert!(e.message.contains(&quoted(&text)), "{}", e);
                prop_assert!(!e.message.chars().any(char::is_control));
            }
        }

        #[test]
        fn port_like_text_parses_or_names_itself(text in "(\\[[0-9a-f:]{0,8}\\]:|[0-9.]{0,9}:)?[0-9]{0,6}(:[0-9]{0,6})?(/[a-z]{0,4})?") {
            if let Err(e) = text.parse::<PortSpec>() {
                prop_assert!(e.message.contains(&quoted(&text)), "{}", e);
            }
        }

        #[test]
        fn specs_round_trip(spec in any_spec()) {
            let again: PortSpec = spec.to_string().parse().unwrap();
            prop_assert_eq!(again, spec);
        }
    }
}
