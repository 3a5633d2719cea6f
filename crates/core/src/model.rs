//! The model types: images, containers, execution instances, drivers.
//!
//! Their serde form is the JSON of the API and of `inspect`, shaped after
//! Kleene's (seed 001), so field names follow Kleene rather than Rust habit
//! where the two differ.

use crate::error::{CoreError, Result};
use crate::port::PortSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A root filesystem that containers are made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// 12-hex-digit id.
    pub id: String,
    /// Unique name, e.g. `busybox`.
    pub name: String,
    /// Where the image was made from (`busybox-static`, or the imported path).
    pub source: String,
    /// The command a container runs when none is given.
    pub cmd: Vec<String>,
    /// When the image was made.
    pub created: DateTime<Utc>,
}

/// How a container is networked (Kleene's network drivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkDriver {
    /// Shares the host's network stack, without the right to change it.
    Host,
    /// IP-only access to networks: addresses, no interface rights.
    Ipnet,
    /// A full virtual stack of its own on a bridge.
    Vnet,
    /// Its own stack with only `lo`.
    Disabled,
}

impl NetworkDriver {
    /// The driver's name as users type it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Ipnet => "ipnet",
            Self::Vnet => "vnet",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for NetworkDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NetworkDriver {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "host" => Ok(Self::Host),
            "ipnet" => Ok(Self::Ipnet),
            "vnet" => Ok(Self::Vnet),
            "disabled" => Ok(Self::Disabled),
            _ => Err(CoreError::invalid(format!(
                "unknown network driver {} (expected host, ipnet, vnet or disabled)",
                crate::error::quoted(s)
            ))),
        }
    }
}

/// A container as stored and as `container inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// 12-hex-digit id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The image it was made from.
    pub image_id: String,
    /// The command its init runs.
    pub cmd: Vec<String>,
    /// The user its processes run as.
    pub user: String,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// How it is networked.
    pub network_driver: NetworkDriver,
    /// Published ports.
    pub public_ports: Vec<PortSpec>,
    /// Jail-style parameters (`-J`), e.g. `allow.raw_sockets`.
    pub params: Vec<String>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Whether its init is running.
    pub running: bool,
    /// The host pid of its init while it runs (the jail id of FreeBSD).
    pub pid: Option<i32>,
    /// The exit code of its init's last run.
    pub exit_code: Option<i32>,
}

impl Container {
    /// The status word of `lsc`.
    pub fn status(&self) -> &'static str {
        if self.running { "running" } else { "stopped" }
    }
}

/// An execution instance: a process run in a container, its init included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    /// 12-hex-digit id.
    pub id: String,
    /// The container it runs in.
    pub container_id: String,
    /// Its command line.
    pub cmd: Vec<String>,
    /// Whether it is the container's init.
    pub is_init: bool,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Its exit code, once it has exited.
    pub exit_code: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_round_trip() {
        for d in [
            NetworkDriver::Host,
            NetworkDriver::Ipnet,
            NetworkDriver::Vnet,
            NetworkDriver::Disabled,
        ] {
            assert_eq!(d.as_str().parse::<NetworkDriver>().unwrap(), d);
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        }
        let err = "bridge".parse::<NetworkDriver>().unwrap_err();
        assert!(err.message.contains("'bridge'"));
    }

    #[test]
    fn network_type_is_type_in_json() {
        let net = Network {
            id: "0123456789ab".into(),
            name: "n1".into(),
            net_type: NetworkType::Bridge,
            interface: "cell0".into(),
            subnet: Some("10.2.3.0/24".parse().unwrap()),
            subnet6: None,
            gateway: Some("10.2.3.1".parse().unwrap()),
            gateway6: None,
            nat: None,
            icc: true,
            internal: false,
            antispoof: true,
        };
        let json = serde_json::to_value(&net).unwrap();
        assert_eq!(json["type"], "bridge");
        assert!(json.get("net_type").is_none());
        assert_eq!(serde_json::from_value::<Network>(json).unwrap(), net);
    }
}

/// The kind of a network (Kleene's network types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// Layer 3 only: one veth per container, a /32 (/128) inside, a host
    /// route to it, no bridge.
    Loopback,
    /// A Linux bridge holding the gateway; vnet and ipnet containers.
    Bridge,
    /// An existing host interface; ipnet containers get a macvlan child.
    Custom,
}

impl NetworkType {
    /// The type's name as users type it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Bridge => "bridge",
            Self::Custom => "custom",
        }
    }
}

impl fmt::Display for NetworkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NetworkType {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "loopback" => Ok(Self::Loopback),
            "bridge" => Ok(Self::Bridge),
            "custom" => Ok(Self::Custom),
            _ => Err(CoreError::invalid(format!(
                "unknown network type {} (expected loopback, bridge or custom)",
                crate::error::quoted(s)
            ))),
        }
    }
}

/// A network as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 12-hex-digit id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Loopback, bridge or custom; `type` in the API's JSON.
    #[serde(rename = "type")]
    pub net_type: NetworkType,
    /// The host interface: `cellN` (the bridge of a bridge network, the name
    /// containers see on a loopback network) or the parent of a custom one.
    pub interface: String,
    /// IPv4 subnet.
    pub subnet: Option<ipnet::Ipv4Net>,
    /// IPv6 subnet.
    pub subnet6: Option<ipnet::Ipv6Net>,
    /// IPv4 gateway, held by the host on the bridge.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// IPv6 gateway.
    pub gateway6: Option<std::net::Ipv6Addr>,
    /// The interface NAT goes out of; `None` with `--no-nat`.
    pub nat: Option<String>,
    /// Whether containers of the network may reach each other.
    pub icc: bool,
    /// Whether traffic may leave the network.
    pub internal: bool,
    /// Whether containers may send only with their own MAC and addresses.
    pub antispoof: bool,
}

/// A container's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 12-hex-digit id.
    pub id: String,
    /// The network.
    pub network_id: String,
    /// The container.
    pub container_id: String,
    /// The host end of the container's veth pair, while it exists.
    pub epair: Option<String>,
    /// IPv4 address.
    pub ip_address: Option<std::net::Ipv4Addr>,
    /// IPv6 address.
    pub ip_address6: Option<std::net::Ipv6Addr>,
    /// The MAC address of the container's interface.
    pub mac: Option<String>,
}
