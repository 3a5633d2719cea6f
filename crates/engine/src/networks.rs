//! Network use cases: create, list, inspect, remove, prune, connect and
//! disconnect; attaching a container's endpoints when it starts and
//! detaching them when it stops; and restoring all of it when `celld`
//! starts.
//!
//! Intent first: a network or endpoint is recorded before its kernel
//! objects are made, and marked (`removing`, `detaching`) before they are
//! removed, so celld's start can finish or undo what a crash cut short.
//! Locks: a change to a container's endpoints takes that container's lock
//! and no other; `create_lock` only orders network creations.

use crate::error::{Context, Result};
use crate::{Engine, EngineError};
use cell_core::CoreError;
use cell_core::ids::new_id;
use cell_core::ipam;
use cell_core::model::{Container, Endpoint, Network, NetworkDriver, NetworkType};
use cell_core::netspec::{HostPrefix, HostPrefixKind, NatChoice};
use cell_net::container_driver::container_driver;
use cell_net::driver::{self, HostKernel};
use cell_net::links::RouteKind;
use cell_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

pub use cell_core::netspec::CreateNetwork;

/// What `cell network connect` asks for (the network is in the path).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// Container name, id or id prefix.
    pub container: String,
    /// A fixed IPv4 address instead of the next free one.
    #[serde(default)]
    pub ip: Option<String>,
    /// A fixed IPv6 address instead of the next free one.
    #[serde(default)]
    pub ip6: Option<String>,
}

/// What `cell network disconnect` asks for (the network is in the path).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Container name, id or id prefix.
    pub container: String,
}

/// The name of the pseudo-network of containers using the host driver.
const HOST_NETWORK: &str = "host";

impl Engine {
    fn host(&self) -> HostKernel<'_> {
        self.net.host()
    }

    /// Creates a network and its kernel objects. The row is written first
    /// (a crash after it leaves a network that celld's next start sets up);
    /// if the kernel work fails, it is undone and the row removed, so
    /// nothing is left behind.
    pub fn create_network(&self, req: &CreateNetwork) -> Result<Network> {
        let valid = req.validate()?;
        let _guard = crate::lock(&self.create_lock);
        let existing = self.networks()?;
        if existing.iter().any(|n| n.name == valid.name) {
            return Err(
                CoreError::conflict(format!("network name '{}' is already in use", valid.name)).into(),
            );
        }
        cell_core::netspec::check_overlap(&valid, &existing)?;
        let host = self.host_prefixes(&existing)?;
        cell_core::netspec::check_host_overlap(valid.subnet, valid.subnet6, &host)?;
        let interface = match (&valid.interface, valid.net_type) {
            (Some(name), net_type) => {
                if driver::is_host_ifname(name) {
                    return Err(CoreError::invalid(format!(
                        "interface name '{name}' is reserved: cell names its veths cv<12 hex digits>"
                    ))
                    .into());
                }
                if let Some(other) = existing.iter().find(|n| &n.interface == name) {
                    return Err(CoreError::conflict(format!(
                        "interface '{name}' is already used by network '{}'",
                        other.name
                    ))
                    .into());
                }
                let on_host = self.host_link_exists(name)?;
                if net_type == NetworkType::Custom && !on_host {
                    return Err(CoreError::invalid(format!("host interface '{name}' does not exist")).into());
                }
                // cell makes bridges and names interfaces of its own; it
                // never takes over one that is already there.
                if net_type != NetworkType::Custom && on_host {
                    return Err(CoreError::conflict(format!(
                        "interface '{name}' already exists on the host"
                    ))
                    .into());
                }
                name.clone()
            }
            (None, _) => self.free_interface_name(&existing)?,
        };
        let nat = match &valid.nat {
            NatChoice::Off => None,
            NatChoice::Interface(name) => {
                if !self.host_link_exists(name)? {
                    return Err(CoreError::invalid(format!(
                        "--nat interface '{name}' does not exist on the host"
                    ))
                    .into());
                }
                Some(name.clone())
            }
            NatChoice::HostDefault => host_default_interface(),
        };
        let network = valid.into_network(new_id(), interface, nat);
        self.store()
            .insert_network(&network)
            .context(|| format!("failed to record network {}", network.name))?;
        let kernel = self.host();
        if let Err(e) = driver::setup_network(kernel, &network) {
            let e = crate::EngineError::from_net(e, || format!("failed to set up network {}", network.name));
            let mut undo = Vec::new();
            if let Err(u) = driver::teardown_network(kernel, &network) {
                undo.push(crate::EngineError::from_net(u, || {
                    format!("failed to remove the kernel objects of network {}", network.name)
                }));
            }
            if let Err(u) = self.store().delete_network(&network.id) {
                undo.push(crate::EngineError::Store {
                    context: format!("failed to forget network {}", network.name),
                    source: u,
                });
            }
            return Err(crate::EngineError::with_undo(e, undo));
        }
        tracing::info!(network = %network.name, interface = %network.interface, "network created");
        Ok(network)
    }

    /// The addresses the host holds on interfaces that are not cell's (its
    /// networks' bridges and its veths are covered by `check_overlap`), for
    /// refusing a network over the host's own LAN.
    fn host_prefixes(&self, existing: &[Network]) -> Result<Vec<HostPrefix>> {
        let links = self.host().links;
        let context = || "failed to list the host's addresses".to_string();
        // cell's bridges and veths, and loopback: none is the host's LAN.
        let is_hosts_own = |name: &str| {
            name != "lo" && !driver::is_host_ifname(name) && !existing.iter().any(|n| n.interface == name)
        };
        let mut prefixes = Vec::new();
        for link in links.list_links().context(context)? {
            if !is_hosts_own(&link.name) {
                continue;
            }
            for prefix in links.list_addresses(&link.name).context(context)? {
                prefixes.push(HostPrefix {
                    prefix,
                    interface: link.name.clone(),
                    kind: HostPrefixKind::Address,
                });
            }
        }
        // Routes out of the host's own interfaces; cell's (unreachable
        // routes, routes to its veths and bridges) have no device or one of
        // cell's, and check_overlap covers them.
        for route in links.list_routes().context(context)? {
            let Some(dev) = route.dev else { continue };
            if is_hosts_own(&dev) && route.kind == RouteKind::Unicast {
                prefixes.push(HostPrefix {
                    prefix: route.dest,
                    interface: dev,
                    kind: HostPrefixKind::Route,
                });
            }
        }
        Ok(prefixes)
    }

    fn host_link_exists(&self, name: &str) -> Result<bool> {
        Ok(self
            .host()
            .links
            .link_index(name)
            .context(|| format!("failed to look up interface {name}"))?
            .is_some())
    }

    /// The first `cellN` that neither a network nor the host uses.
    fn free_interface_name(&self, existing: &[Network]) -> Result<String> {
        let taken: HashSet<&str> = existing.iter().map(|n| n.interface.as_str()).collect();
        for n in 0.. {
            let name = format!("cell{n}");
            if !taken.contains(name.as_str()) && !self.host_link_exists(&name)? {
                return Ok(name);
            }
        }
        unreachable!("some cellN is free")
    }

    /// Every network, in creation order.
    pub fn networks(&self) -> Result<Vec<Network>> {
        self.read()?
            .networks()
            .context(|| "failed to list networks".into())
    }

    /// `network inspect`, Kleene's JSON: `{"network": {...}, "network_endpoints": [...]}`.
    /// `host` is the pseudo-network of the containers using the host driver.
    pub fn inspect_network(&self, reference: &str) -> Result<Value> {
        if reference == HOST_NETWORK {
            return self.inspect_host_network();
        }
        let network = self.find_network(reference)?;
        let endpoints = self
            .read()?
            .endpoints_of_network(&network.id)
            .context(|| format!("failed to list the endpoints of {}", network.name))?;
        Ok(json!({
            "network": network_json(&network),
            "network_endpoints": endpoints.iter().map(endpoint_json).collect::<Vec<_>>(),
        }))
    }

    /// The endpoints of a container in inspect's shape.
    pub(crate) fn container_endpoints_json(&self, container_id: &str) -> Result<Vec<Value>> {
        let endpoints = self
            .read()?
            .endpoints_of_container(container_id)
            .context(|| format!("failed to list the endpoints of {container_id}"))?;
        Ok(endpoints.iter().map(endpoint_json).collect())
    }

    /// Removes a network, disconnecting its containers first. The network
    /// is marked first, so it takes no new endpoint meanwhile. If some
    /// endpoints cannot be detached, the others are removed all the same,
    /// the failures are reported, and the network stays marked: `rm` again,
    /// or celld's next start, finishes the removal.
    pub fn remove_network(self: &Arc<Self>, reference: &str) -> Result<Network> {
        if reference == HOST_NETWORK {
            return Err(CoreError::invalid("the host network cannot be removed").into());
        }
        let network = self.find_network(reference)?;
        self.store()
            .mark_network_removing(&network.id, false)
            .context(|| format!("failed to remove network {}", network.name))?;
        self.finish_network_removal(&network)?;
        Ok(network)
    }

    /// Detaches every endpoint of a network marked for removal, each under
    /// its container's lock and none while another is held, then removes
    /// the network's kernel objects and its row.
    pub(crate) fn finish_network_removal(&self, network: &Network) -> Result<()> {
        let endpoints = self
            .read()?
            .endpoints_of_network(&network.id)
            .context(|| format!("failed to list the endpoints of {}", network.name))?;
        let mut errors = Vec::new();
        for ep in &endpoints {
            let lock = self.container_lock(&ep.container_id);
            let _container = crate::lock(&lock);
            if let Err(e) = self.remove_endpoint(network, ep) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return crate::EngineError::all(errors);
        }
        driver::teardown_network(self.host(), network)
            .context(|| format!("failed to remove the kernel objects of network {}", network.name))?;
        self.store()
            .delete_network(&network.id)
            .context(|| format!("failed to remove network {}", network.name))?;
        tracing::info!(network = %network.name, "network removed");
        Ok(())
    }

    /// Removes every network without endpoints; returns their ids. Each is
    /// checked and marked in one statement, so a container connecting at
    /// the same moment is either refused or keeps its network.
    pub fn prune_networks(self: &Arc<Self>) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for network in self.networks()? {
            let marked = self
                .store()
                .mark_network_removing(&network.id, true)
                .context(|| format!("failed to remove network {}", network.name))?;
            if marked {
                self.finish_network_removal(&network)?;
                removed.push(network.id);
            }
        }
        Ok(removed)
    }

    /// Connects a container to a network; a running one is attached at
    /// once. The endpoint (the address lease) is recorded first; if the
    /// attach fails, what it did is undone and the row removed.
    pub fn connect(self: &Arc<Self>, network: &str, req: &ConnectRequest) -> Result<Endpoint> {
        let network = self.find_network(network)?;
        let container = self.find_container(&req.container)?;
        check_driver(container.network_driver, &network)?;
        let lock = self.container_lock(&container.id);
        let _container = crate::lock(&lock);
        let container = self.find_container(&container.id)?;
        let started = std::time::Instant::now();
        let endpoint = {
            let mut store = self.store();
            new_endpoint(
                &mut store,
                &network,
                &container,
                req.ip.as_deref(),
                req.ip6.as_deref(),
            )?
        };
        if container.running
            && let Err(e) = self.attach_endpoint(&container, &network, &endpoint)
        {
            // The attach undid its own kernel work; the lease goes too.
            let undo =
                self.store()
                    .delete_endpoint(&endpoint.id)
                    .err()
                    .map(|source| crate::EngineError::Store {
                        context: format!("failed to forget endpoint {}", endpoint.id),
                        source,
                    });
            return Err(crate::EngineError::with_undo(e, undo.into_iter().collect()));
        }
        tracing::debug!(container = %container.name, network = %network.name,
            total_us = started.elapsed().as_micros(), "connected");
        Ok(endpoint)
    }

    /// Disconnects a container from a network; a running one is detached
    /// at once.
    pub fn disconnect(self: &Arc<Self>, network: &str, req: &DisconnectRequest) -> Result<Endpoint> {
        let network = self.find_network(network)?;
        let container = self.find_container(&req.container)?;
        let lock = self.container_lock(&container.id);
        let _container = crate::lock(&lock);
        let endpoint = self
            .read()?
            .endpoint(&network.id, &container.id)
            .context(|| format!("failed to look up the endpoint of {}", container.name))?
            .ok_or_else(|| {
                CoreError::conflict(format!(
                    "container '{}' is not connected to network '{}'",
                    container.name, network.name
                ))
            })?;
        self.remove_endpoint(&network, &endpoint)?;
        Ok(endpoint)
    }

    /// Marks an endpoint as being detached, detaches it and forgets it; the
    /// caller holds its container's lock. A crash in between is finished
    /// by celld's next start.
    fn remove_endpoint(&self, network: &Network, ep: &Endpoint) -> Result<()> {
        let context = || format!("failed to remove endpoint {}", ep.id);
        self.store().mark_endpoint_detaching(&ep.id).context(context)?;
        self.detach_endpoint(network, ep)?;
        self.store().delete_endpoint(&ep.id).context(context)?;
        // Its container's published ports may have targeted this endpoint:
        // they now go to the next network that can take them, if any.
        let container = self.find_container(&ep.container_id)?;
        if container.running && !container.public_ports.is_empty() {
            self.add_forwards(&container, &container.public_ports)?;
        }
        Ok(())
    }

    /// The networks a new container asks for, checked against its driver
    /// before anything is written.
    pub(crate) fn networks_for_new_container(
        &self,
        driver: NetworkDriver,
        names: &[String],
        ip: Option<&str>,
        ip6: Option<&str>,
    ) -> Result<Vec<Network>> {
        if names.is_empty() && (ip.is_some() || ip6.is_some()) {
            let flag = if ip.is_some() { "--ip" } else { "--ip6" };
            return Err(CoreError::invalid(format!("{flag} needs a network (-n NETWORK)")).into());
        }
        let mut networks: Vec<Network> = Vec::new();
        for name in names {
            let network = self.find_network(name)?;
            if networks.iter().any(|n| n.id == network.id) {
                return Err(CoreError::invalid(format!("network '{name}' is given twice")).into());
            }
            check_driver(driver, &network)?;
            networks.push(network);
        }
        // Check a fixed address now, so a bad one records nothing.
        if let Some(first) = networks.first() {
            if let Some(text) = ip {
                ipam::parse_requested_v4(first, text)?;
            }
            if let Some(text) = ip6 {
                ipam::parse_requested_v6(first, text)?;
            }
        }
        Ok(networks)
    }

    /// Records a new container with its endpoints and published ports in
    /// one go: if an address or a port cannot be had, the container is not
    /// recorded either. Automatic host ports are chosen here, under the same
    /// hold of the store, and `container.public_ports` gets the chosen
    /// ones; the reservations are returned for the caller to keep.
    pub(crate) fn insert_container_with_endpoints(
        &self,
        container: &mut Container,
        networks: &[Network],
        ip: Option<&str>,
        ip6: Option<&str>,
    ) -> Result<Vec<(cell_core::port::PortSpec, crate::host_ports::Reservation)>> {
        let mut store = self.store();
        let claimed = self.claim_ports(&store, &container.public_ports)?;
        container.public_ports = claimed.ports;
        let container = &*container;
        store.insert_container(container).map_err(|e| {
            let name_taken = || matches!(store.container_by_name(&container.name), Ok(Some(_)));
            if e.is_constraint_violation() && name_taken() {
                CoreError::conflict(format!("container name '{}' is already in use", container.name)).into()
            } else if e.is_constraint_violation() {
                crate::ports::port_store_error(e, &container.name)
            } else {
                EngineError::Store {
                    context: format!("failed to record container {}", container.name),
                    source: e,
                }
            }
        })?;
        for (i, network) in networks.iter().enumerate() {
            let (ip, ip6) = if i == 0 { (ip, ip6) } else { (None, None) };
            if let Err(e) = new_endpoint(&mut store, network, container, ip, ip6) {
                // The endpoints made so far go with the row (cascade).
                let undo = store
                    .delete_container(&container.id)
                    .err()
                    .map(|source| EngineError::Store {
                        context: format!("failed to forget container {}", container.name),
                        source,
                    });
                return Err(EngineError::with_undo(e, undo.into_iter().collect()));
            }
        }
        Ok(claimed.held)
    }

    /// Makes a starting container's network namespace and attaches its
    /// endpoints, if its driver gives it a namespace of its own. On failure
    /// everything made is undone.
    pub(crate) fn setup_container_net(&self, container: &Container) -> Result<Option<PathBuf>> {
        let container_driver = container_driver(container.network_driver);
        if !container_driver.has_own_netns() {
            return Ok(None);
        }
        let path = self.netns_path(&container.id);
        // A namespace left by a container that died while celld was down.
        self.net
            .delete_netns(&path)
            .context(|| format!("failed to remove stale netns {}", path.display()))?;
        self.net
            .create_netns(&path)
            .context(|| format!("failed to create the network namespace of {}", container.name))?;
        let started = self
            .net
            .open_netns(&path)
            .and_then(|netns| {
                cell_net::plan::apply(&container_driver.plan_start(), self.host(), Some(netns.kernel()))
            })
            .context(|| format!("failed to set up the network namespace of {}", container.name))
            .and_then(|()| self.attach_endpoints(container));
        if let Err(e) = started {
            let undo = self
                .net
                .delete_netns(&path)
                .err()
                .map(|u| EngineError::from_net(u, || format!("failed to remove {}", path.display())));
            return Err(EngineError::with_undo(e, undo.into_iter().collect()));
        }
        Ok(Some(path))
    }

    /// Detaches every endpoint of a container that stopped (or is being
    /// removed) and removes its namespace. Goes on past each failure and
    /// reports them all: the container is down either way.
    pub(crate) fn teardown_container_net(&self, container_id: &str) -> Result<()> {
        let mut errors = Vec::new();
        match self.endpoints_with_networks(container_id) {
            Ok(endpoints) => {
                for (network, ep) in &endpoints {
                    if let Err(e) = self.detach_endpoint(network, ep) {
                        tracing::warn!(container = %container_id, "{e}");
                        errors.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        let netns = self.netns_path(container_id);
        if let Err(e) = self.net.delete_netns(&netns) {
            errors.push(EngineError::from_net(e, || {
                format!("failed to remove {}", netns.display())
            }));
        }
        EngineError::all(errors)
    }

    /// Attaches every endpoint of a container whose namespace was just
    /// made; on failure the ones attached are detached again.
    fn attach_endpoints(&self, container: &Container) -> Result<()> {
        let endpoints = self.endpoints_with_networks(&container.id)?;
        for (i, (network, ep)) in endpoints.iter().enumerate() {
            if let Err(e) = self.attach_endpoint(container, network, ep) {
                let undo = endpoints[..i]
                    .iter()
                    .filter_map(|(network, ep)| self.detach_endpoint(network, ep).err())
                    .collect();
                return Err(EngineError::with_undo(e, undo));
            }
        }
        Ok(())
    }

    /// Attaches one endpoint; on failure the driver undoes what it did.
    fn attach_endpoint(&self, container: &Container, network: &Network, ep: &Endpoint) -> Result<()> {
        let path = self.netns_path(&container.id);
        let context = || {
            format!(
                "failed to attach container {} to network {}",
                container.name, network.name
            )
        };
        let opened = std::time::Instant::now();
        // The container's published ports that target this endpoint go in
        // the same transaction as its other elements.
        let forwards =
            cell_net::ports::forwards_of(ep, &self.forwards(&container.id, &container.public_ports)?);
        let netns = self.net.open_netns(&path).context(context)?;
        tracing::debug!(container = %container.name, open_us = opened.elapsed().as_micros(), "entered netns");
        driver::attach_with_ports(
            self.host(),
            netns.kernel(),
            network,
            ep,
            container.network_driver,
            &forwards,
        )
        .context(context)
    }

    /// The forwards of a container's published ports that target `ep`,
    /// for its detach. A store that cannot be read gives none: the detach
    /// goes on, and celld's next start rebuilds the maps from the store.
    fn forwards_to(&self, ep: &Endpoint) -> Vec<cell_net::ports::PortForward> {
        let all = self
            .read()
            .and_then(|store| {
                store
                    .ports_of_container(&ep.container_id)
                    .context(|| format!("failed to read the ports of {}", ep.container_id))
            })
            .and_then(|ports| self.forwards(&ep.container_id, &ports));
        match all {
            Ok(all) => cell_net::ports::forwards_of(ep, &all),
            Err(e) => {
                tracing::warn!(container = %ep.container_id, "{e}");
                Vec::new()
            }
        }
    }

    /// Detaches an endpoint's kernel objects, if it has any; the row stays.
    pub(crate) fn detach_endpoint(&self, network: &Network, ep: &Endpoint) -> Result<()> {
        let path = self.netns_path(&ep.container_id);
        // The container's namespace is needed only to delete a macvlan,
        // which otherwise dies with the namespace anyway.
        let netns = if network.net_type == NetworkType::Custom {
            self.net.open_netns(&path).ok()
        } else {
            None
        };
        let inside = netns.as_ref().map(|ns| ns.kernel().links);
        let forwards = self.forwards_to(ep);
        driver::detach_with_ports(self.host(), inside, network, ep, &forwards).context(|| {
            format!(
                "failed to detach container {} from network {}",
                ep.container_id, network.name
            )
        })
    }

    pub(crate) fn endpoints_with_networks(&self, container_id: &str) -> Result<Vec<(Network, Endpoint)>> {
        let store = self.read()?;
        let context = || format!("failed to list the endpoints of {container_id}");
        let mut pairs = Vec::new();
        for ep in store.endpoints_of_container(container_id).context(context)? {
            let network = store
                .network_by_id(&ep.network_id)
                .context(context)?
                .ok_or_else(|| {
                    EngineError::User(CoreError::internal(format!("endpoint {} has no network", ep.id)))
                })?;
            pairs.push((network, ep));
        }
        Ok(pairs)
    }
}

/// Whether a container with `driver` may join `network`: the driver says.
fn check_driver(driver: NetworkDriver, network: &Network) -> Result<()> {
    Ok(container_driver(driver).check_join(network)?)
}

/// Allocates the addresses of a new endpoint and records it, under one
/// hold of the store: two allocations never see the same free address, and
/// the UNIQUE constraints of the table back that up.
fn new_endpoint(
    store: &mut Store,
    network: &Network,
    container: &Container,
    ip: Option<&str>,
    ip6: Option<&str>,
) -> Result<Endpoint> {
    let context = || format!("failed to connect {} to {}", container.name, network.name);
    if store
        .endpoint(&network.id, &container.id)
        .context(context)?
        .is_some()
    {
        return Err(CoreError::conflict(format!(
            "container '{}' is already connected to network '{}'",
            container.name, network.name
        ))
        .into());
    }
    let (used4, used6) = store.addresses_in_network(&network.id).context(context)?;
    let ip_address = address(
        ip,
        network.subnet.is_some(),
        |text| ipam::parse_requested_v4(network, text),
        |addr| ipam::check_requested_v4(network, addr, &used4),
        || ipam::allocate_v4(network, &used4),
    )?;
    let ip_address6 = address(
        ip6,
        network.subnet6.is_some(),
        |text| ipam::parse_requested_v6(network, text),
        |addr| ipam::check_requested_v6(network, addr, &used6),
        || ipam::allocate_v6(network, &used6),
    )?;
    let id = new_id();
    let veth = driver::uses_veth(network.net_type);
    let endpoint = Endpoint {
        epair: veth.then(|| driver::host_ifname(&id)),
        mac: veth.then(|| driver::mac_from_id(&id).to_string()),
        id,
        network_id: network.id.clone(),
        container_id: container.id.clone(),
        ip_address,
        ip_address6,
    };
    store.insert_endpoint(&endpoint).map_err(|e| {
        if e.is_constraint_violation() {
            CoreError::conflict(format!(
                "an address of container '{}' is already in use in network '{}'",
                container.name, network.name
            ))
            .into()
        } else {
            EngineError::Store {
                context: context(),
                source: e,
            }
        }
    })?;
    Ok(endpoint)
}

/// One family's address of a new endpoint: the requested one, checked;
/// else the next free one if the network has a subnet of that family.
fn address<A: Copy>(
    requested: Option<&str>,
    has_subnet: bool,
    parse: impl Fn(&str) -> cell_core::error::Result<A>,
    check: impl Fn(A) -> cell_core::error::Result<()>,
    allocate: impl Fn() -> cell_core::error::Result<A>,
) -> Result<Option<A>> {
    Ok(match requested {
        Some(text) => {
            let addr = parse(text)?;
            check(addr)?;
            Some(addr)
        }
        None if has_subnet => Some(allocate()?),
        None => None,
    })
}

/// A network in Kleene's JSON: absent values are empty strings.
fn network_json(n: &Network) -> Value {
    let text = |v: Option<String>| v.unwrap_or_default();
    json!({
        "id": n.id,
        "name": n.name,
        "type": n.net_type,
        "interface": n.interface,
        "subnet": text(n.subnet.map(|s| s.to_string())),
        "subnet6": text(n.subnet6.map(|s| s.to_string())),
        "gateway": text(n.gateway.map(|s| s.to_string())),
        "gateway6": text(n.gateway6.map(|s| s.to_string())),
        "nat": text(n.nat.clone()),
        "icc": n.icc,
        "internal": n.internal,
        "antispoof": n.antispoof,
    })
}

/// An endpoint in Kleene's JSON: `epair` is the host end of the veth, or
/// null (custom networks); absent addresses are empty strings.
fn endpoint_json(ep: &Endpoint) -> Value {
    json!({
        "id": ep.id,
        "network_id": ep.network_id,
        "container_id": ep.container_id,
        "epair": ep.epair,
        "ip_address": ep.ip_address.map(|a| a.to_string()).unwrap_or_default(),
        "ip_address6": ep.ip_address6.map(|a| a.to_string()).unwrap_or_default(),
        "mac": ep.mac,
    })
}

/// The interface of the host's IPv4 default route (else IPv6), the
/// default way out for NAT.
fn host_default_interface() -> Option<String> {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    default_route_v4(&v4).or_else(|| default_route_v6(&v6))
}

/// The interface of the first default route in `/proc/net/route`.
fn default_route_v4(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() > 7 && cols[1] == "00000000" && cols[7] == "00000000").then(|| cols[0].to_string())
    })
}

/// The interface of the first default route in `/proc/net/ipv6_route`
/// (destination `::/0`, not the unreachable route on `lo`).
fn default_route_v6(table: &str) -> Option<String> {
    table.lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() == 10 && cols[0].bytes().all(|b| b == b'0') && cols[1] == "00" && cols[9] != "lo")
            .then(|| cols[9].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_interface_is_read_from_proc() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  em1\t0064A8C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  em0\t00000000\t016433C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_v4(v4).as_deref(), Some("em0"));
        assert_eq!(default_route_v4("Iface\tDestination\n"), None);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                  fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth9\n";
        assert_eq!(default_route_v6(v6).as_deref(), Some("eth9"));
    }

    /// Seed 001's network.
    fn testnet() -> Network {
        Network {
            id: "6b933304be4a".into(),
            name: "testnet".into(),
            net_type: NetworkType::Loopback,
            interface: "cell0".into(),
            subnet: Some("10.2.3.0/24".parse().unwrap()),
            subnet6: None,
            gateway: None,
            gateway6: None,
            nat: Some("em0".into()),
            icc: true,
            internal: false,
            antispoof: true,
        }
    }

    #[test]
    fn vnet_joins_bridges_only() {
        let mut net = testnet();
        let err = check_driver(NetworkDriver::Vnet, &net).unwrap_err();
        assert_eq!(
            err.to_string(),
            "containers using the 'vnet' network-driver can't connect to loopback networks"
        );
        net.net_type = NetworkType::Custom;
        let err = check_driver(NetworkDriver::Vnet, &net).unwrap_err();
        assert!(err.to_string().ends_with("custom networks"), "{err}");
        net.net_type = NetworkType::Bridge;
        check_driver(NetworkDriver::Vnet, &net).unwrap();
        check_driver(NetworkDriver::Ipnet, &net).unwrap();
        let err = check_driver(NetworkDriver::Host, &net).unwrap_err();
        assert!(err.to_string().contains("'host'"), "{err}");
    }

    #[test]
    fn inspect_json_has_kleenes_empty_strings() {
        let net = testnet();
        let v = network_json(&net);
        assert_eq!(v["type"], "loopback");
        assert_eq!(v["subnet6"], "");
        assert_eq!(v["gateway"], "");
        assert_eq!(v["nat"], "em0");
        let ep = Endpoint {
            id: "89ef2673d9e5".into(),
            network_id: net.id.clone(),
            container_id: "f455de07ac84".into(),
            epair: None,
            ip_address: Some("10.2.3.2".parse().unwrap()),
            ip_address6: None,
            mac: None,
        };
        let v = endpoint_json(&ep);
        assert_eq!(v["epair"], Value::Null);
        assert_eq!(v["ip_address"], "10.2.3.2");
        assert_eq!(v["ip_address6"], "");
    }
}
