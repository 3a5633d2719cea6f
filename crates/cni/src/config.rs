//! [`NetConf`]: the plugin configuration a runtime sends on stdin, in
//! cell's own words (`../shared/CLI.md`, "CNI plugin"), checked once into
//! values the operations take as they are.
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "pods",
//!  "type": "cell-cni", "network": "bridge", "driver": "vnet",
//!  "interface": "cellcni0", "subnet": "10.88.0.0/16", "nat": true}
//! ```
//!
//! Parsing is in two steps, as ripgrep's low and high arguments: serde
//! reads the keys ([`Code::Decode`] when the JSON does not fit), then
//! [`NetConf::parse`] checks them and fills in the defaults
//! ([`Code::InvalidConfig`], naming the bad value). The network is then a
//! `cell_core` [`Network`], so the `cell-net` drivers plan it exactly as
//! they plan one of `celld`'s, and validate it the same way.
//!
//! Keys and defaults: `network` (`bridge`), `driver` (`vnet` on a bridge,
//! `ipnet` otherwise), `interface` (the bridge, default
//! [`DEFAULT_BRIDGE`]; the parent of a custom network, required),
//! `subnet` and/or `subnet6`, `gateway`/`gateway6` (an address, `auto` or
//! `none`, as `--gw`; a bridge's default is the subnet's first address; a
//! loopback network has none), `nat` (true: out of the host's default
//! route; false; or an interface name; default true; custom and internal
//! networks have none), `icc` (true), `internal` (false), `antispoof`
//! (true; custom networks have none), `dataDir` ([`DEFAULT_DATA_DIR`]).
//! Everything about the network itself is checked by `cell_core`'s
//! `CreateNetwork::validate`, as `cell network create` is.

use crate::error::{CniError, Code, Result};
use cell_core::model::{Network, NetworkDriver, NetworkType};
use cell_core::netspec::{CreateNetwork, NatChoice};
use cell_core::port::{PortSpec, Protocol};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;
use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// The CNI versions the plugin speaks; results of 0.3.x are those of 0.4.0.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Where leases and network records live unless `dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/cell";

/// The bridge of a bridge network that names none. Not `celld`'s `cellN`,
/// so the two never share a bridge.
pub const DEFAULT_BRIDGE: &str = "cellcni0";

/// The keys a configuration may carry besides cell's own: the spec's and
/// the well-known ones runtimes pass along. Anything else is logged.
const PROTOCOL_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "capabilities",
    "runtimeConfig",
    "prevResult",
    "args",
    "dns",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
    "ipMasq",
];

/// Where NATed traffic leaves the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nat {
    /// No NAT.
    Off,
    /// Out of the interface of the host's default route, found at ADD.
    DefaultRoute,
    /// Out of this interface.
    Interface(String),
}

/// One attachment the runtime still wants (`cni.dev/valid-attachments`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID` of its ADD.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` of its ADD.
    pub ifname: String,
}

/// One port mapping of `runtimeConfig.portMappings`.
///
/// The spec spells the keys `hostPort`, `containerPort`, `protocol`,
/// `hostIP`; containerd's go-cni sends its Go struct's field names
/// (`HostPort`, `ContainerPort`, `Protocol`, `HostIP`), which the
/// reference plugins take because Go decodes JSON keys without regard to
/// case. Both spellings are read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port on the host.
    #[serde(alias = "HostPort")]
    pub host_port: u16,
    /// The port in the container.
    #[serde(alias = "ContainerPort")]
    pub container_port: u16,
    /// `tcp` (the default) or `udp`, in any case.
    #[serde(default = "tcp", alias = "Protocol")]
    pub protocol: String,
    /// The host address it is reachable on; empty for all.
    #[serde(default, rename = "hostIP", alias = "HostIP", alias = "hostIp")]
    pub host_ip: String,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<PortMapping>,
}

/// The keys as serde reads them, before any check.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    cni_version: Option<String>,
    name: Option<String>,
    network: Option<String>,
    driver: Option<String>,
    interface: Option<String>,
    subnet: Option<String>,
    subnet6: Option<String>,
    gateway: Option<String>,
    gateway6: Option<String>,
    nat: Option<Value>,
    icc: Option<bool>,
    internal: Option<bool>,
    antispoof: Option<bool>,
    data_dir: Option<PathBuf>,
    ipam: Option<Value>,
    #[serde(default)]
    runtime_config: Option<RuntimeConfig>,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// The CNI version results and errors are given in.
    pub cni_version: String,
    /// The network's name: the key of its leases and records.
    pub name: String,
    /// Loopback, bridge or custom.
    pub net_type: NetworkType,
    /// ipnet or vnet.
    pub driver: NetworkDriver,
    /// The bridge, or a custom network's parent; `None` on loopback.
    pub interface: Option<String>,
    /// IPv4 subnet.
    pub subnet: Option<Ipv4Net>,
    /// IPv6 subnet.
    pub subnet6: Option<Ipv6Net>,
    /// IPv4 gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// Where NATed traffic leaves.
    pub nat: Nat,
    /// Whether containers of the network reach each other.
    pub icc: bool,
    /// Whether traffic may leave the network.
    pub internal: bool,
    /// Whether containers may send only with their own MAC and addresses.
    pub antispoof: bool,
    /// Where leases live.
    pub data_dir: PathBuf,
    /// Ports to forward to the container (`runtimeConfig.portMappings`).
    pub port_mappings: Vec<PortSpec>,
    /// The result of the previous plugin, or of the ADD (DEL, CHECK).
    pub prev_result: Option<Value>,
    /// GC: the attachments to keep; `None` outside GC.
    pub valid_attachments: Option<Vec<Attachment>>,
}

fn invalid(msg: String) -> CniError {
    CniError::new(Code::InvalidConfig, msg)
}

/// The `cniVersion` of a configuration, if it has one: errors are given in
/// it even when the rest does not parse.
pub fn version_of(config: &Value) -> Option<&str> {
    config.get("cniVersion").and_then(Value::as_str)
}

/// Checks that the plugin speaks `version`.
pub fn check_version(version: &str) -> Result<()> {
    if SUPPORTED_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "cniVersion '{version}' is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ),
        ))
    }
}

/// Whether `version` is at least `major.minor`.
pub fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

impl NetConf {
    /// Checks a configuration and fills in the defaults.
    pub fn parse(config: &Value) -> Result<Self> {
        let raw: RawConf = serde_json::from_value(config.clone()).map_err(|e| {
            CniError::caused(
                Code::Decode,
                format!("failed to decode the configuration: {e}"),
                &e,
            )
        })?;
        let cni_version = raw
            .cni_version
            .ok_or_else(|| invalid("the configuration has no cniVersion".into()))?;
        check_version(&cni_version)?;
        let name = raw
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("the configuration has no network name (\"name\")".into()))?;
        if let Some(ipam) = raw.ipam {
            return Err(CniError::new(
                Code::UnsupportedField,
                format!(
                    "unsupported field \"ipam\": {ipam}: cell-cni allocates addresses itself from \"subnet\" and \"subnet6\""
                ),
            ));
        }
        for key in raw.other.keys() {
            if !PROTOCOL_KEYS.contains(&key.as_str()) && !key.starts_with("cni.dev/") {
                tracing::warn!(key, "ignoring an unknown configuration key");
            }
        }
        // The network itself is checked by the very code that checks
        // `cell network create`, with the CNI defaults filled in: the same
        // subnets are refused, the same gateways chosen, the same flags
        // refused on custom and internal networks.
        let net_type = raw.network.clone().unwrap_or_else(|| "bridge".into());
        let interface = match net_type.as_str() {
            "bridge" => Some(raw.interface.clone().unwrap_or_else(|| DEFAULT_BRIDGE.into())),
            "loopback" => {
                if let Some(name) = &raw.interface {
                    tracing::warn!(
                        interface = name,
                        "a loopback network has no host interface; ignoring \"interface\""
                    );
                }
                None
            }
            _ => raw.interface.clone(),
        };
        let (nat, no_nat) = match &raw.nat {
            None | Some(Value::Bool(true)) => (None, false),
            Some(Value::Bool(false)) => (None, true),
            Some(Value::String(name)) => (Some(name.clone()), false),
            Some(other) => {
                return Err(invalid(format!(
                    "\"nat\": {other} is neither true, false nor an interface name"
                )));
            }
        };
        let request = CreateNetwork {
            name: name.clone(),
            net_type: Some(net_type),
            interface,
            subnet: raw.subnet.clone(),
            subnet6: raw.subnet6.clone(),
            gateway: raw.gateway.clone(),
            gateway6: raw.gateway6.clone(),
            nat,
            no_nat,
            icc: raw.icc,
            internal: raw.internal.unwrap_or(false),
            antispoof: raw.antispoof,
            size: None,
        };
        let valid = request.validate().map_err(|e| invalid(e.message))?;
        // celld carves subnets from its pools; the plugin has none, so a
        // network must name its blocks (a node's subnet comes from the
        // cluster).
        if valid.pool_request.is_some() {
            return Err(invalid(
                "\"subnet\" or \"subnet6\" is required (an address block, not \"auto\": cell-cni has no pool)"
                    .to_string(),
            ));
        }
        let net_type = valid.net_type;
        let default_driver = match net_type {
            NetworkType::Bridge => "vnet",
            _ => "ipnet",
        };
        let driver: NetworkDriver = raw
            .driver
            .as_deref()
            .unwrap_or(default_driver)
            .parse()
            .map_err(|e: cell_core::CoreError| invalid(format!("\"driver\": {}", e.message)))?;
        if !matches!(driver, NetworkDriver::Ipnet | NetworkDriver::Vnet) {
            return Err(invalid(format!(
                "\"driver\": '{driver}' containers are not attached to networks (expected ipnet or vnet)"
            )));
        }
        let nat = match valid.nat {
            NatChoice::Off => Nat::Off,
            NatChoice::HostDefault => Nat::DefaultRoute,
            NatChoice::Interface(name) => Nat::Interface(name),
        };
        let (interface, subnet, subnet6, gateway, gateway6) = (
            valid.interface,
            valid.subnet,
            valid.subnet6,
            valid.gateway,
            valid.gateway6,
        );
        let conf = Self {
            cni_version,
            name,
            net_type,
            driver,
            interface,
            subnet,
            subnet6,
            gateway,
            gateway6,
            nat,
            icc: valid.icc,
            internal: valid.internal,
            antispoof: valid.antispoof,
            data_dir: raw.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            port_mappings: raw
                .runtime_config
                .unwrap_or_default()
                .port_mappings
                .iter()
                .map(port_spec)
                .collect::<Result<_>>()?,
            prev_result: raw.prev_result,
            valid_attachments: raw.valid_attachments,
        };
        // The drivers' own checks (interface name, gateways inside their
        // subnets, which container drivers may join), as `celld` makes them.
        let net = conf.network("eth0", None);
        cell_net::network_driver(net.net_type)
            .validate(&net)
            .map_err(|e| invalid(cell_core::error::chain(&e)))?;
        cell_net::container_driver(conf.driver)
            .check_join(&net)
            .map_err(|e| invalid(e.message))?;
        Ok(conf)
    }

    /// The network id: derived from the name, so every call agrees on it
    /// without any state.
    pub fn network_id(&self) -> String {
        short_hash(&[&self.name])
    }

    /// The network as the `cell-net` drivers take it, for an attachment
    /// whose interface inside is `ifname`, NATed out of `nat_ifname`.
    ///
    /// A loopback network's `interface` is the name inside the container
    /// (it has no host interface); for the other types the plans name the
    /// inside interface after `interface` too, and
    /// [`crate::plans::inside_named`] renames it to `ifname`.
    pub fn network(&self, ifname: &str, nat_ifname: Option<String>) -> Network {
        Network {
            id: self.network_id(),
            name: self.name.clone(),
            net_type: self.net_type,
            interface: self.interface.clone().unwrap_or_else(|| ifname.to_string()),
            subnet: self.subnet,
            subnet6: self.subnet6,
            gateway: self.gateway,
            gateway6: self.gateway6,
            nat: nat_ifname,
            icc: self.icc,
            internal: self.internal,
            antispoof: self.antispoof,
        }
    }
}

/// A port mapping as the `cell-net` ports take it. An empty host address,
/// `0.0.0.0` or `::` means every host address, as with the reference
/// `portmap` plugin.
fn port_spec(mapping: &PortMapping) -> Result<PortSpec> {
    let protocol = match mapping.protocol.to_ascii_lowercase().as_str() {
        "tcp" | "" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(invalid(format!(
                "portMappings: protocol '{other}' of host port {} is not supported (tcp or udp)",
                mapping.host_port
            )));
        }
    };
    if mapping.host_port == 0 || mapping.container_port == 0 {
        return Err(invalid(format!(
            "portMappings: port 0 in {} -> {} is not a port",
            mapping.host_port, mapping.container_port
        )));
    }
    let host_ip = match mapping.host_ip.as_str() {
        "" | "0.0.0.0" | "::" => None,
        text => Some(text.parse().map_err(|_| {
            invalid(format!(
                "portMappings: hostIP '{text}' of host port {} is not an address",
                mapping.host_port
            ))
        })?),
    };
    Ok(PortSpec {
        host_ip,
        host_port: mapping.host_port,
        container_port: mapping.container_port,
        protocol,
    })
}

/// The id of an attachment `(network, container id, ifname)`: 12 hex
/// digits, the same at every call, so DEL and GC find its host end
/// (`cvID`) and elements even without a lease.
pub fn endpoint_id(network: &str, container_id: &str, ifname: &str) -> String {
    short_hash(&[network, container_id, ifname])
}

/// 48 bits of FNV-1a over the parts (each ended by a NUL) as 12 hex
/// digits. FNV because it is fixed forever, unlike std's hasher, and ids
/// need no resistance to attack: a collision is refused by ADD (the host
/// end exists).
fn short_hash(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{:012x}", hash & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: Value) -> Result<NetConf> {
        NetConf::parse(&config)
    }

    #[test]
    fn a_bridge_by_default_with_cells_defaults() {
        let conf = parse(json!({"cniVersion": "1.1.0", "name": "pods", "type": "cell-cni",
            "subnet": "10.88.0.0/16"}))
        .unwrap();
        assert_eq!(conf.net_type, NetworkType::Bridge);
        assert_eq!(conf.driver, NetworkDriver::Vnet);
        assert_eq!(conf.interface.as_deref(), Some(DEFAULT_BRIDGE));
        assert_eq!(conf.gateway, Some("10.88.0.1".parse().unwrap()));
        assert_eq!(conf.nat, Nat::DefaultRoute);
        assert!(conf.icc && conf.antispoof && !conf.internal);
        assert_eq!(conf.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let net = conf.network("eth0", Some("em0".into()));
        assert_eq!(net.interface, DEFAULT_BRIDGE);
        assert_eq!(net.id, conf.network_id());
        assert_eq!(net.id.len(), 12);
    }

    #[test]
    fn every_key_is_read() {
        let conf = parse(json!({"cniVersion": "0.4.0", "name": "ll", "type": "cell-cni",
            "network": "loopback", "subnet": "10.9.0.0/24", "subnet6": "fd00:9::/64",
            "nat": "em0", "icc": false, "antispoof": false,
            "dataDir": "/tmp/x", "runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}))
        .unwrap();
        assert_eq!(conf.net_type, NetworkType::Loopback);
        assert_eq!(conf.driver, NetworkDriver::Ipnet);
        assert_eq!(conf.interface, None);
        assert_eq!((conf.gateway, conf.gateway6), (None, None));
        assert_eq!(conf.nat, Nat::Interface("em0".into()));
        assert!(!conf.icc && !conf.internal && !conf.antispoof);
        assert_eq!(conf.port_mappings[0].host_port, 8080);
        assert_eq!(conf.port_mappings[0].protocol, Protocol::Tcp);
        assert_eq!(conf.port_mappings[0].host_ip, None);
        // containerd's go-cni spelling.
        let go_cni = parse(
            json!({"cniVersion": "1.1.0", "name": "p", "subnet": "10.9.0.0/24",
            "runtimeConfig": {"portMappings": [
                {"HostPort": 8080, "ContainerPort": 80, "Protocol": "TCP", "HostIP": "10.0.0.1"}]}}),
        )
        .unwrap();
        assert_eq!(go_cni.port_mappings[0].host_port, 8080);
        assert_eq!(go_cni.port_mappings[0].protocol, Protocol::Tcp);
        assert_eq!(go_cni.port_mappings[0].host_ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(conf.network("net1", None).interface, "net1");
        let custom = parse(json!({"cniVersion": "1.0.0", "name": "lan", "network": "custom",
            "interface": "em0", "subnet": "192.0.2.0/24"}))
        .unwrap();
        assert_eq!(custom.nat, Nat::Off);
        assert_eq!(custom.gateway, None);
        assert!(!custom.antispoof, "custom networks have no anti-spoofing");
        let internal =
            parse(json!({"cniVersion": "1.0.0", "name": "in", "subnet": "10.9.0.0/24", "internal": true}))
                .unwrap();
        assert_eq!(internal.nat, Nat::Off);
    }

    #[test]
    fn bad_configurations_name_the_bad_value() {
        for (config, code, named) in [
            (
                json!({"cniVersion": "9.9.9", "name": "n", "subnet": "10.0.0.0/24"}),
                Code::IncompatibleVersion,
                "9.9.9",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/33"}),
                Code::InvalidConfig,
                "10.0.0.0/33",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "network": "overlay"}),
                Code::InvalidConfig,
                "overlay",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n"}),
                Code::InvalidConfig,
                "subnet",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "gateway": "10.1.0.1"}),
                Code::InvalidConfig,
                "10.1.0.1",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "network": "loopback", "driver": "vnet"}),
                Code::InvalidConfig,
                "vnet",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "driver": "host"}),
                Code::InvalidConfig,
                "host",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "network": "custom"}),
                Code::InvalidConfig,
                "interface",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "interface": "a/b"}),
                Code::InvalidConfig,
                "a/b",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "nat": 3}),
                Code::InvalidConfig,
                "3",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "ipam": {"type": "host-local"}}),
                Code::UnsupportedField,
                "ipam",
            ),
            (
                json!({"cniVersion": "1.1.0", "name": "n", "subnet": "10.0.0.0/24", "icc": "yes"}),
                Code::Decode,
                "boolean",
            ),
        ] {
            let err = parse(config.clone()).unwrap_err();
            assert_eq!(err.code, code, "{config}: {}", err.msg);
            assert!(err.msg.contains(named), "{config}: {}", err.msg);
        }
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = endpoint_id("pods", "c1", "eth0");
        assert_eq!(a, endpoint_id("pods", "c1", "eth0"));
        assert_ne!(a, endpoint_id("pods", "c1", "eth1"));
        assert_ne!(a, endpoint_id("pods", "c1e", "th0"));
        assert!(cell_net::driver::is_host_ifname(&cell_net::driver::host_ifname(
            &a
        )));
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(version_at_least("1.1.0", 1, 1));
        assert!(version_at_least("1.10.0", 1, 1));
        assert!(!version_at_least("0.4.0", 1, 0));
        assert!(version_at_least("0.4.0", 0, 4));
    }
}
