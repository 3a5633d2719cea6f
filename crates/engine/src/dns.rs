//! DNS modes (pot's `-d`, `--dns`) and network stacks (pot's `-S`) of
//! containers: checked at create and connect, and turned into the
//! `resolv.conf` written into the container at each start.
//!
//! The pure parts (parsing, rendering the files) are in
//! [`cell_core::resolv`]; this module gathers what they need from the
//! store and the host: the DNS container's address on a network both
//! share, the host's own `/etc/resolv.conf`.

use crate::Engine;
use crate::error::{Context, Result};
use cell_core::CoreError;
use cell_core::error::quoted;
use cell_core::model::{Container, Dns, Endpoint, Network, NetworkDriver, Stack};
use cell_core::resolv;
use std::net::IpAddr;

/// Where the host's resolver configuration is read from, at each start of
/// a container whose mode is `inherit` (or `cell`, for its search domains).
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

impl Engine {
    /// The DNS mode a new container gets: the requested one, checked, or
    /// the default for its driver. A `container` mode is resolved to the
    /// DNS container's id, which must share one of `networks` with an
    /// address of the new container's `stack`.
    pub(crate) fn dns_for_new_container(
        &self,
        driver: NetworkDriver,
        stack: Stack,
        networks: &[Network],
        requested: Option<Dns>,
    ) -> Result<Dns> {
        let Some(dns) = requested else {
            return Ok(Dns::default_for(driver));
        };
        match dns {
            Dns::Cell if driver == NetworkDriver::Host => Err(CoreError::invalid(
                "--dns cell needs a network namespace of the container's own: the host driver shares the \
                 host's, so use --dns inherit (the default for it)",
            )
            .into()),
            Dns::Custom { resolv_conf } => {
                resolv::validate_custom_resolv_conf(&resolv_conf)?;
                Ok(Dns::Custom { resolv_conf })
            }
            Dns::Container { container } => {
                let server = self.find_dns_container(&container)?;
                let network_ids: Vec<&str> = networks.iter().map(|n| n.id.as_str()).collect();
                let server_endpoints = self.endpoints_of(&server.id)?;
                nameserver_address(stack, &network_ids, &server_endpoints)
                    .ok_or_else(|| no_shared_network(&container, stack))?;
                Ok(Dns::Container { container: server.id })
            }
            other => Ok(other),
        }
    }

    /// The DNS container a `--dns container:NAME` names.
    fn find_dns_container(&self, reference: &str) -> Result<Container> {
        self.find_container(reference).map_err(|e| match e {
            crate::EngineError::User(e) if e.kind == cell_core::ErrorKind::NotFound => CoreError::invalid(
                format!("no such container {} (--dns container:NAME)", quoted(reference)),
            )
            .into(),
            other => other,
        })
    }

    fn endpoints_of(&self, container_id: &str) -> Result<Vec<Endpoint>> {
        self.read()?
            .endpoints_of_container(container_id)
            .context(|| format!("failed to list the endpoints of {container_id}"))
    }

    /// The DNS container a container must have running before it starts,
    /// if its mode is `container` and that container still exists.
    pub(crate) fn dns_container_of(&self, container: &Container) -> Result<Option<Container>> {
        let Dns::Container { container: server } = &container.dns else {
            return Ok(None);
        };
        self.read()?
            .container(server)
            .context(|| format!("failed to look up the dns container of {}", container.name))
    }

    /// The `resolv.conf` to write into `container` at this start, or `None`
    /// to leave the image's file alone (`off`).
    pub(crate) fn resolv_conf_for(&self, container: &Container) -> Result<Option<String>> {
        Ok(Some(match &container.dns {
            Dns::Off => return Ok(None),
            Dns::Inherit => host_resolv_conf(),
            Dns::Cell => resolv::cell_resolv_conf(&host_resolv_conf()),
            Dns::Custom { resolv_conf } => resolv_conf.clone(),
            Dns::Container { container: server_id } => {
                let server = self
                    .read()?
                    .container(server_id)
                    .context(|| format!("failed to look up the dns container of {}", container.name))?;
                let Some(server) = server else {
                    return Err(CoreError::conflict(format!(
                        "the dns container of '{}' (id {server_id}) no longer exists; create '{}' again \
                         with another --dns",
                        container.name, container.name
                    ))
                    .into());
                };
                let mine: Vec<String> = self
                    .endpoints_of(&container.id)?
                    .into_iter()
                    .map(|ep| ep.network_id)
                    .collect();
                let mine: Vec<&str> = mine.iter().map(String::as_str).collect();
                let address = nameserver_address(container.stack, &mine, &self.endpoints_of(&server.id)?)
                    .ok_or_else(|| no_shared_network(&server.name, container.stack))?;
                resolv::nameserver_resolv_conf(address)
            }
        }))
    }
}

/// The host's `resolv.conf`; empty when it has none (the C library then
/// asks a server on the loopback, as on the host itself).
fn host_resolv_conf() -> String {
    std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default()
}

fn no_shared_network(server: &str, stack: Stack) -> crate::EngineError {
    CoreError::invalid(format!(
        "container {} shares no network with this container, or has no address of stack {stack} \
         there; --dns container:NAME needs one",
        quoted(server)
    ))
    .into()
}

/// The address of a DNS container a container reaches it at: on the first
/// of the container's networks (in `network_ids` order) that the server's
/// `endpoints` share, its IPv4 address if the container's stack has IPv4,
/// else its IPv6 address.
pub(crate) fn nameserver_address(
    stack: Stack,
    network_ids: &[&str],
    endpoints: &[Endpoint],
) -> Option<IpAddr> {
    network_ids.iter().find_map(|id| {
        let ep = endpoints.iter().find(|ep| ep.network_id == *id)?;
        let v4 = ep.ip_address.filter(|_| stack.has_ipv4()).map(IpAddr::V4);
        v4.or_else(|| ep.ip_address6.filter(|_| stack.has_ipv6()).map(IpAddr::V6))
    })
}

/// Refuses a network a container of `stack` cannot be on: one without a
/// subnet of the only family the container has.
pub(crate) fn check_stack(stack: Stack, network: &Network) -> cell_core::error::Result<()> {
    let missing = match stack {
        Stack::Ipv6 if network.subnet6.is_none() => "IPv6 subnet (--subnet6)",
        Stack::Ipv4 if network.subnet.is_none() => "IPv4 subnet (--subnet)",
        _ => return Ok(()),
    };
    Err(CoreError::invalid(format!(
        "network '{}' has no {missing}, so a container with stack {stack} (-S {stack}) cannot join it",
        network.name
    )))
}

/// Refuses a fixed address of the family a container's stack lacks.
pub(crate) fn check_stack_addresses(
    stack: Stack,
    ip: Option<&str>,
    ip6: Option<&str>,
) -> cell_core::error::Result<()> {
    let refused = match (stack, ip, ip6) {
        (Stack::Ipv6, Some(ip), _) => format!("--ip {}", quoted(ip)),
        (Stack::Ipv4, _, Some(ip6)) => format!("--ip6 {}", quoted(ip6)),
        _ => return Ok(()),
    };
    Err(CoreError::invalid(format!(
        "{refused} does not fit a container with stack {stack} (-S {stack})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cell_core::model::NetworkType;

    fn endpoint(network: &str, v4: Option<&str>, v6: Option<&str>) -> Endpoint {
        Endpoint {
            id: format!("ep{network}"),
            network_id: network.into(),
            container_id: "dns".into(),
            epair: None,
            ip_address: v4.map(|a| a.parse().unwrap()),
            ip_address6: v6.map(|a| a.parse().unwrap()),
            mac: None,
        }
    }

    #[test]
    fn nameserver_is_on_the_first_shared_network_in_the_stacks_family() {
        let server = [
            endpoint("a", Some("10.0.0.2"), None),
            endpoint("b", Some("10.1.0.2"), Some("fd00::2")),
        ];
        let at = |stack, nets: &[&str]| nameserver_address(stack, nets, &server).map(|a| a.to_string());
        assert_eq!(at(Stack::Dual, &["b", "a"]).as_deref(), Some("10.1.0.2"));
        assert_eq!(at(Stack::Dual, &["x", "a"]).as_deref(), Some("10.0.0.2"));
        assert_eq!(at(Stack::Ipv6, &["b"]).as_deref(), Some("fd00::2"));
        assert_eq!(at(Stack::Ipv6, &["a"]), None);
        assert_eq!(at(Stack::Ipv6, &["a", "b"]).as_deref(), Some("fd00::2"));
        assert_eq!(at(Stack::Dual, &["x"]), None);
        assert_eq!(at(Stack::Dual, &[]), None);
    }

    fn network(subnet: Option<&str>, subnet6: Option<&str>) -> Network {
        Network {
            id: "6b933304be4a".into(),
            name: "n1".into(),
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
        }
    }

    #[test]
    fn a_stack_needs_a_subnet_of_its_family() {
        let v4_only = network(Some("10.0.0.0/24"), None);
        let v6_only = network(None, Some("fd00::/64"));
        let dual = network(Some("10.0.0.0/24"), Some("fd00::/64"));
        for net in [&v4_only, &v6_only, &dual] {
            check_stack(Stack::Dual, net).unwrap();
        }
        check_stack(Stack::Ipv4, &dual).unwrap();
        check_stack(Stack::Ipv6, &dual).unwrap();
        assert_eq!(
            check_stack(Stack::Ipv6, &v4_only).unwrap_err().message,
            "network 'n1' has no IPv6 subnet (--subnet6), so a container with stack ipv6 (-S ipv6) cannot join it"
        );
        assert!(
            check_stack(Stack::Ipv4, &v6_only)
                .unwrap_err()
                .message
                .contains("no IPv4 subnet")
        );
    }

    #[test]
    fn fixed_addresses_must_fit_the_stack() {
        check_stack_addresses(Stack::Dual, Some("10.0.0.5"), Some("fd00::5")).unwrap();
        check_stack_addresses(Stack::Ipv4, Some("10.0.0.5"), None).unwrap();
        let err = check_stack_addresses(Stack::Ipv6, Some("10.0.0.5"), None).unwrap_err();
        assert_eq!(
            err.message,
            "--ip '10.0.0.5' does not fit a container with stack ipv6 (-S ipv6)"
        );
        assert!(check_stack_addresses(Stack::Ipv4, None, Some("fd00::5")).is_err());
    }
}
