//! Published ports: which are allowed, choosing automatic host ports,
//! holding each host port while its container exists, and where each one
//! is forwarded to.
//!
//! A published port is a row of the store (the reservation of record, see
//! `cell_store::PublishedPort`), a socket celld holds bound on the host
//! port ([`crate::host_ports`]), and, while the container runs, elements in
//! cell's nftables DNAT maps (`cell_net::ports`), put in and taken out with
//! the endpoint the port is forwarded to. The row and the socket live as
//! long as the container; the elements as long as it runs.
//!
//! Policy (issue 8, item 7): `host` and `disabled` containers cannot
//! publish (the seed's message); a port is forwarded to the container's
//! address on its first network that is neither custom (a macvlan
//! container serves on its own LAN address) nor internal (no way in from
//! outside by definition); a container with no such network is refused,
//! with a message that says which case it is. A port on all addresses is
//! forwarded on IPv4 and, when the container has an IPv6 address there, on
//! IPv6 too.
//!
//! Locks: choosing and recording ports happens under one hold of the
//! store's writer, so two concurrent `run -p :80` never pick the same port;
//! the bound socket and the table's constraints back that up.

use crate::error::{Context, Result};
use crate::host_ports::Reservation;
use crate::{Engine, EngineError};
use cell_core::CoreError;
use cell_core::model::{Container, Network};
use cell_core::port::{AUTO_PORT, PortRange, PortSpec, PublishSpec};
use cell_net::ports::{PortForward, container_forwards};
use cell_store::Store;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// What `cell port add|rm` send: `-p` specs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsRequest {
    /// `[HOST_IP:][HOST_PORT][:CONTAINER_PORT][/PROTO]` each.
    pub ports: Vec<String>,
}

/// One line of `cell port`: pot's `HOST_ADDR port HOST_PORT ->
/// CONTAINER_ADDR port CONTAINER_PORT/PROTO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortLine {
    /// The host address (`0.0.0.0` or `::` when published on all).
    pub host_addr: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The container's address the port is forwarded to; absent when the
    /// container has no network to publish on (it was disconnected).
    pub container_addr: Option<IpAddr>,
    /// The container port.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: cell_core::port::Protocol,
}

impl std::fmt::Display for PortLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let container = self
            .container_addr
            .map_or_else(|| "-".to_string(), |a| a.to_string());
        write!(
            f,
            "{} port {} -> {container} port {}/{}",
            self.host_addr, self.host_port, self.container_port, self.protocol
        )
    }
}

/// The network's addresses give ports a target (bridge and loopback
/// networks that are not internal; see `cell_net::ports::can_target`).
fn allows_publishing(network: &Network) -> bool {
    cell_net::ports::can_target(network)
}

/// Refuses, with the reason, ports of a container on `networks` (in the
/// order it joined them) when none of them can be a target, or when a
/// port's host address is of a family none of them gives the container.
pub(crate) fn check_publishable(name: &str, networks: &[Network], ports: &[PortSpec]) -> Result<()> {
    let targets: Vec<&Network> = networks.iter().filter(|n| allows_publishing(n)).collect();
    if targets.is_empty() {
        let message = match networks.iter().find(|n| n.internal) {
            _ if networks.is_empty() => format!(
                "cannot publish ports of container '{name}': it is on no network (publish needs -n NETWORK)"
            ),
            Some(internal) => format!(
                "cannot publish ports of container '{name}': network '{}' is internal (no traffic from outside reaches it)",
                internal.name
            ),
            None => format!(
                "cannot publish ports of container '{name}': its only networks are custom (macvlan) networks, \
                 where it serves on its own LAN address ({})",
                networks
                    .iter()
                    .map(|n| format!("'{}' on {}", n.name, n.interface))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(CoreError::invalid(message).into());
    }
    let has_v4 = targets.iter().any(|n| n.subnet.is_some());
    let has_v6 = targets.iter().any(|n| n.subnet6.is_some());
    for port in ports {
        let (family, has) = match port.host_ip {
            Some(IpAddr::V4(_)) => ("IPv4", has_v4),
            Some(IpAddr::V6(_)) => ("IPv6", has_v6),
            None => ("IP", has_v4 || has_v6),
        };
        if !has {
            return Err(CoreError::invalid(format!(
                "cannot publish {} of container '{name}': none of its networks gives it an {family} address",
                port.host_side(),
            ))
            .into());
        }
    }
    Ok(())
}

/// Parses `-p` specs into mappings, refusing one that two specs name.
pub(crate) fn parse_specs(specs: &[String]) -> Result<Vec<PortSpec>> {
    let mut ports: Vec<PortSpec> = Vec::new();
    for spec in specs {
        for mapping in spec.parse::<PublishSpec>()?.mappings() {
            if mapping.host_port != AUTO_PORT
                && let Some(twice) = ports.iter().find(|p| p.clashes_with(&mapping))
            {
                return Err(CoreError::invalid(format!(
                    "host port {} is given twice ({twice} and {mapping})",
                    mapping.host_side()
                ))
                .into());
            }
            ports.push(mapping);
        }
    }
    Ok(ports)
}

/// Ports chosen and reserved, not yet recorded; dropping them releases
/// the reservations.
pub(crate) struct Claimed {
    pub ports: Vec<PortSpec>,
    pub held: Vec<(PortSpec, Reservation)>,
}

impl Engine {
    /// The range automatic host ports come from.
    fn auto_range(&self) -> PortRange {
        self.config
            .port_range
            .unwrap_or_else(|| self.host_ports.ephemeral_range())
    }

    /// Checks `requested` for a container and reserves each host port,
    /// choosing the automatic ones; the caller holds the store's writer
    /// (`store`) until it has recorded them, so nobody else chooses
    /// meanwhile. Nothing stays reserved on error.
    pub(crate) fn claim_ports(&self, store: &Store, requested: &[PortSpec]) -> Result<Claimed> {
        self.check_host_addresses(requested)?;
        let published = store
            .published_ports()
            .context(|| "failed to read the published ports".into())?;
        let mut claimed = Claimed {
            ports: Vec::new(),
            held: Vec::new(),
        };
        for port in requested.iter().filter(|p| p.host_port != AUTO_PORT) {
            if let Some(holder) = published.iter().find(|p| p.port.clashes_with(port)) {
                let name = store
                    .container(&holder.container_id)
                    .context(|| format!("failed to look up container {}", holder.container_id))?
                    .map_or_else(|| holder.container_id.clone(), |c| c.name);
                return Err(CoreError::conflict(format!(
                    "host port {} is already published by container '{name}'",
                    port.host_side()
                ))
                .into());
            }
            let reservation = self
                .host_ports
                .reserve(port)
                .map_err(|e| reserve_error(port, e))?;
            claimed.ports.push(port.clone());
            claimed.held.push((port.clone(), reservation));
        }
        let range = self.auto_range();
        for port in requested.iter().filter(|p| p.host_port == AUTO_PORT) {
            let chosen = self.choose_port(range, port, &published, &claimed.ports)?;
            claimed.ports.push(chosen.0.clone());
            claimed.held.push(chosen);
        }
        // Keep the order the user gave.
        claimed.ports = order_like(requested, claimed.ports);
        Ok(claimed)
    }

    /// The next free host port of `range` for `port`, from a cursor that
    /// moves on, so that a port just given up is not handed out again at
    /// once (its connections may still be in conntrack).
    fn choose_port(
        &self,
        range: PortRange,
        port: &PortSpec,
        published: &[cell_store::PublishedPort],
        claimed: &[PortSpec],
    ) -> Result<(PortSpec, Reservation)> {
        let mut cursor = self.next_auto_port.lock().unwrap_or_else(|e| e.into_inner());
        let len = range.len() as u32;
        let offset = u32::from(cursor.clamp(range.start, range.end) - range.start);
        for i in 0..len {
            let candidate = PortSpec {
                host_port: range.start + ((offset + i) % len) as u16,
                ..port.clone()
            };
            if published.iter().any(|p| p.port.clashes_with(&candidate))
                || claimed.iter().any(|p| p.clashes_with(&candidate))
            {
                continue;
            }
            match self.host_ports.reserve(&candidate) {
                Ok(reservation) => {
                    *cursor = candidate.host_port.checked_add(1).unwrap_or(range.start);
                    return Ok((candidate, reservation));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(reserve_error(&candidate, e)),
            }
        }
        Err(CoreError::conflict(format!(
            "no free host port left in {range} for {port} (configure port_range in celld.toml for more)"
        ))
        .into())
    }

    /// Refuses a host address the host does not hold.
    fn check_host_addresses(&self, ports: &[PortSpec]) -> Result<()> {
        let wanted: Vec<IpAddr> = ports.iter().filter_map(|p| p.host_ip).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let links = self.net.host().links;
        let context = || "failed to list the host's addresses".to_string();
        let mut held = Vec::new();
        for link in links.list_links().context(context)? {
            held.extend(links.list_addresses(&link.name).context(context)?);
        }
        for ip in wanted {
            let is_held = held.iter().any(|net| net.addr() == ip)
                // All of 127.0.0.0/8 is the host's, though lo lists one address.
                || (ip.is_loopback() && held.iter().any(|net| net.addr().is_loopback() && net.contains(&ip)));
            if !is_held {
                return Err(CoreError::invalid(format!(
                    "cannot publish on {ip}: it is not an address of this host"
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Keeps a container's reservations until it is removed.
    pub(crate) fn keep_reservations(&self, container_id: &str, held: Vec<(PortSpec, Reservation)>) {
        if held.is_empty() {
            return;
        }
        self.reservations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(container_id.to_string())
            .or_default()
            .extend(held);
    }

    /// Gives up the reservations of `ports` of a container (all of them
    /// when `ports` is `None`).
    pub(crate) fn release_reservations(&self, container_id: &str, ports: Option<&[PortSpec]>) {
        let mut all = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        match ports {
            None => {
                all.remove(container_id);
            }
            Some(ports) => {
                if let Some(held) = all.get_mut(container_id) {
                    held.retain(|(p, _)| !ports.contains(p));
                }
            }
        }
    }

    /// Gives up every reservation, as the end of celld's process does
    /// (for tests that start a second engine on the same state).
    #[cfg(test)]
    pub(crate) fn release_all_reservations(&self) {
        self.reservations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Binds every published port again at celld's start. A port a host
    /// process took while celld was down cannot be: that is logged, and
    /// the container keeps its row (its forward still wins for traffic
    /// from outside, as the kernel forwards before any socket sees it).
    pub(crate) fn restore_reservations(&self) -> Result<()> {
        let published = self
            .read()?
            .published_ports()
            .context(|| "failed to read the published ports".into())?;
        for p in published {
            match self.host_ports.reserve(&p.port) {
                Ok(reservation) => self.keep_reservations(&p.container_id, vec![(p.port, reservation)]),
                Err(e) => tracing::error!(
                    container = %p.container_id,
                    port = %p.port.host_side(),
                    "failed to reserve a published port again: {e}"
                ),
            }
        }
        Ok(())
    }

    /// The forwards of `ports` of a container, to the endpoints it has now
    /// (see `cell_net::ports::container_forwards`).
    pub(crate) fn forwards(&self, container_id: &str, ports: &[PortSpec]) -> Result<Vec<PortForward>> {
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let endpoints = self.endpoints_with_networks(container_id)?;
        Ok(container_forwards(endpoints.iter().map(|(n, e)| (n, e)), ports))
    }

    /// `cell port CONTAINER`: one line per forward, in the order published;
    /// a port with no network to target has one line without a container
    /// address.
    pub fn container_ports(&self, reference: &str) -> Result<Vec<PortLine>> {
        let container = self.find_container(reference)?;
        let mut lines = Vec::new();
        for port in &container.public_ports {
            let forwards = self.forwards(&container.id, std::slice::from_ref(port))?;
            if forwards.is_empty() {
                lines.push(PortLine {
                    host_addr: port.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    host_port: port.host_port,
                    container_addr: None,
                    container_port: port.container_port,
                    protocol: port.protocol,
                });
            }
            for f in forwards {
                let all = if f.is_ipv6() {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                lines.push(PortLine {
                    host_addr: f.host_ip.unwrap_or(all),
                    host_port: f.host_port,
                    container_addr: Some(f.container_ip),
                    container_port: f.container_port,
                    protocol: f.protocol,
                });
            }
        }
        Ok(lines)
    }

    /// `cell port add`: publishes more ports of a container, running or
    /// not; a running one forwards them at once. Returns the new mappings
    /// with their chosen host ports. All or nothing.
    pub fn publish_ports(self: &Arc<Self>, reference: &str, req: &PortsRequest) -> Result<Vec<PortSpec>> {
        let requested = parse_specs(&req.ports)?;
        if requested.is_empty() {
            return Err(CoreError::invalid("no port given to publish").into());
        }
        let container = self.find_container(reference)?;
        let lock = self.container_lock(&container.id);
        let _guard = crate::lock(&lock);
        let container = self.find_container(&container.id)?;
        cell_net::container_driver::container_driver(container.network_driver).check_publish()?;
        let networks: Vec<Network> = self
            .endpoints_with_networks(&container.id)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        check_publishable(&container.name, &networks, &requested)?;
        let claimed = {
            let mut store = self.store();
            let claimed = self.claim_ports(&store, &requested)?;
            store
                .add_published_ports(&container.id, &claimed.ports)
                .map_err(|e| port_store_error(e, &container.name))?;
            claimed
        };
        if container.running
            && let Err(e) = self.add_forwards(&container, &claimed.ports)
        {
            let undo = self
                .store()
                .remove_published_ports(&container.id, &claimed.ports)
                .err()
                .map(|source| EngineError::Store {
                    context: format!("failed to forget the ports of {}", container.name),
                    source,
                });
            return Err(EngineError::with_undo(e, undo.into_iter().collect()));
        }
        self.keep_reservations(&container.id, claimed.held);
        tracing::info!(container = %container.name, ports = ?claimed.ports, "ports published");
        Ok(claimed.ports)
    }

    /// `cell port rm`: unpublishes the ports the specs select (see
    /// [`PublishSpec::selects`]); a spec that selects none is refused and
    /// nothing changes. Returns the mappings removed.
    pub fn unpublish_ports(self: &Arc<Self>, reference: &str, req: &PortsRequest) -> Result<Vec<PortSpec>> {
        let specs = req
            .ports
            .iter()
            .map(|s| s.parse::<PublishSpec>())
            .collect::<Result<Vec<_>, _>>()?;
        if specs.is_empty() {
            return Err(CoreError::invalid("no port given to remove").into());
        }
        let container = self.find_container(reference)?;
        let lock = self.container_lock(&container.id);
        let _guard = crate::lock(&lock);
        let container = self.find_container(&container.id)?;
        for (spec, text) in specs.iter().zip(&req.ports) {
            if !container.public_ports.iter().any(|p| spec.selects(p)) {
                return Err(CoreError::conflict(format!(
                    "container '{}' does not publish {}",
                    container.name,
                    cell_core::error::quoted(text)
                ))
                .into());
            }
        }
        let removed: Vec<PortSpec> = container
            .public_ports
            .iter()
            .filter(|p| specs.iter().any(|s| s.selects(p)))
            .cloned()
            .collect();
        // The rows go first: if the kernel step fails, celld's next start
        // rebuilds the maps from the store, without these.
        self.store()
            .remove_published_ports(&container.id, &removed)
            .context(|| format!("failed to unpublish the ports of {}", container.name))?;
        let unforwarded = if container.running {
            self.remove_forwards(&container, &removed)
        } else {
            Ok(())
        };
        self.release_reservations(&container.id, Some(&removed));
        unforwarded?;
        tracing::info!(container = %container.name, ports = ?removed, "ports unpublished");
        Ok(removed)
    }
}

impl Engine {
    /// Forwards `ports` of a running container, in one transaction.
    pub(crate) fn add_forwards(&self, container: &Container, ports: &[PortSpec]) -> Result<()> {
        let forwards = self.forwards(&container.id, ports)?;
        cell_net::ports::publish(self.net.host().firewall, &forwards)
            .context(|| format!("failed to forward the ports of {}", container.name))
    }

    /// Stops forwarding `ports` of a running container, in one transaction.
    fn remove_forwards(&self, container: &Container, ports: &[PortSpec]) -> Result<()> {
        let forwards = self.forwards(&container.id, ports)?;
        cell_net::ports::unpublish(self.net.host().firewall, &forwards)
            .context(|| format!("failed to stop forwarding the ports of {}", container.name))
    }
}

/// `claimed` put back in the order of `requested` (automatic ones were
/// chosen after the fixed ones).
fn order_like(requested: &[PortSpec], mut claimed: Vec<PortSpec>) -> Vec<PortSpec> {
    let mut ordered = Vec::with_capacity(claimed.len());
    for want in requested {
        let i = claimed
            .iter()
            .position(|c| {
                c.host_ip == want.host_ip
                    && c.container_port == want.container_port
                    && c.protocol == want.protocol
                    && (want.host_port == AUTO_PORT || c.host_port == want.host_port)
            })
            .expect("every requested port was claimed");
        ordered.push(claimed.remove(i));
    }
    ordered
}

/// A failed reservation, in the user's words.
fn reserve_error(port: &PortSpec, e: std::io::Error) -> EngineError {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => CoreError::conflict(format!(
            "host port {} is in use by a process of the host",
            port.host_side()
        ))
        .into(),
        std::io::ErrorKind::AddrNotAvailable => CoreError::invalid(format!(
            "cannot publish on {}: it is not an address of this host",
            port.host_ip.map(|ip| ip.to_string()).unwrap_or_default()
        ))
        .into(),
        _ => EngineError::Io {
            context: format!("failed to reserve host port {}", port.host_side()),
            source: e,
        },
    }
}

/// A store failure recording ports: a clash the checks could not see (a
/// concurrent change) is the user's conflict.
pub(crate) fn port_store_error(e: cell_store::StoreError, name: &str) -> EngineError {
    if e.is_constraint_violation() {
        CoreError::conflict(format!(
            "a host port of container '{name}' was published by another container meanwhile"
        ))
        .into()
    } else {
        EngineError::Store {
            context: format!("failed to record the ports of {name}"),
            source: e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_pot_prints_them() {
        let line = PortLine {
            host_addr: "0.0.0.0".parse().unwrap(),
            host_port: 30080,
            container_addr: Some("10.192.0.11".parse().unwrap()),
            container_port: 80,
            protocol: cell_core::port::Protocol::Tcp,
        };
        assert_eq!(line.to_string(), "0.0.0.0 port 30080 -> 10.192.0.11 port 80/tcp");
    }

    #[test]
    fn a_host_port_given_twice_is_refused() {
        let specs = |s: &[&str]| parse_specs(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let err = specs(&["8080:80", "127.0.0.1:8080:81"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host port 127.0.0.1:8080/tcp is given twice (8080:80/tcp and 127.0.0.1:8080:81/tcp)"
        );
        assert_eq!(specs(&[":80", ":80", "8080/udp", "8080"]).unwrap().len(), 4);
    }
}
