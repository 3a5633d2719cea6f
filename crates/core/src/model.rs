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

/// Which address families a container's network stack has (pot's `-S`).
///
/// On networks a container gets only the chosen family's addresses; with
/// the host driver, whose stack is the host's, the runtime refuses the
/// other family's sockets instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// IPv4 only: no IPv6 address, IPv6 switched off inside.
    Ipv4,
    /// IPv6 only: no IPv4 address but loopback's.
    Ipv6,
    /// Both families, as the networks offer them.
    #[default]
    Dual,
}

impl Stack {
    /// The stack's name as users type it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Dual => "dual",
        }
    }

    /// Whether the container may have IPv4 addresses and sockets.
    pub fn has_ipv4(self) -> bool {
        self != Self::Ipv6
    }

    /// Whether the container may have IPv6 addresses and sockets.
    pub fn has_ipv6(self) -> bool {
        self != Self::Ipv4
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stack {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ipv4" => Ok(Self::Ipv4),
            "ipv6" => Ok(Self::Ipv6),
            "dual" => Ok(Self::Dual),
            _ => Err(CoreError::invalid(format!(
                "unknown network stack {} (expected ipv4, ipv6 or dual)",
                crate::error::quoted(s)
            ))),
        }
    }
}

/// Where a container's `/etc/resolv.conf` comes from (pot's `-d`), written
/// into its root at each start (except [`Dns::Off`]).
///
/// The JSON form is tagged by `mode`: `{"mode": "cell"}`,
/// `{"mode": "custom", "resolv_conf": "nameserver 192.0.2.53\n"}`,
/// `{"mode": "container", "container": "NAME or ID"}`. In a create request
/// `container` names the DNS container as the user did; the stored
/// container holds its id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Dns {
    /// The host's `resolv.conf`, copied at each start.
    #[default]
    Inherit,
    /// The image's file, left alone.
    Off,
    /// This content (the client read it from a file at create).
    Custom {
        /// The whole file.
        resolv_conf: String,
    },
    /// `nameserver` with the address of this container (a DNS container)
    /// on a network both share; it is started first when it is not running.
    Container {
        /// The DNS container: its id once stored.
        container: String,
    },
    /// celld's resolver at `127.0.0.11` inside the container's namespace:
    /// names of containers on shared networks, the rest forwarded.
    Cell,
}

impl Dns {
    /// The mode's name as users type it (`custom`, not `custom:FILE`).
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Inherit => "inherit",
            Self::Off => "off",
            Self::Custom { .. } => "custom",
            Self::Container { .. } => "container",
            Self::Cell => "cell",
        }
    }

    /// Whether celld's resolver serves this container (mode `cell`).
    pub fn is_cell(&self) -> bool {
        *self == Self::Cell
    }

    /// The mode a container gets when it asks for none: celld's resolver
    /// for a container with a network stack that may join networks, the
    /// host's file for one on the host's stack (or on `lo` alone).
    pub fn default_for(driver: NetworkDriver) -> Self {
        match driver {
            NetworkDriver::Ipnet | NetworkDriver::Vnet => Self::Cell,
            NetworkDriver::Host | NetworkDriver::Disabled => Self::Inherit,
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
    /// Its address families (`-S`).
    #[serde(default)]
    pub stack: Stack,
    /// Where its `/etc/resolv.conf` comes from (`--dns`).
    #[serde(default)]
    pub dns: Dns,
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
