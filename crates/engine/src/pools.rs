//! Address pools, the `public` network and the topology view.
//!
//! celld's pools ([`PoolConfig`], resolved into [`Pools`] when the engine
//! opens) are what networks created without `--subnet` are carved from
//! ([`cell_core::pool`]); the carving happens under the network-create
//! lock, against every network and what the host holds, so two creations
//! never get one block. A network with a subnet of its own may not overlap
//! the pools: at create that is refused, and at start a pool that overlaps
//! such a network stops celld, naming both.
//!
//! `public` (pot's public bridge) is a bridge network with NAT that celld
//! makes at its first start from a /24 of the pool (the whole pool if it
//! is smaller). Only its row and firewall elements exist until a container
//! joins: its bridge is made at the first attach ([`Engine::bring_up_public`])
//! and stays while celld runs; a celld start with no running container on
//! it does not make it, and removes one left over. Its NAT goes out of the
//! interface of the host's default route as it is when the network is made
//! and each time its bridge is made (none while the host has no default
//! route), so a celld started before the network is online still gets it
//! right at the first join; a restart alone changes nothing of it. `rm`
//! refuses it and `prune` leaves it.

use crate::error::{Context, Result};
use crate::networks::host_default_interface;
use crate::{Engine, EngineError};
use cell_core::CoreError;
use cell_core::model::{Container, Network, NetworkType};
use cell_core::netspec::{CreateNetwork, HostPrefix, ValidNetwork, overlaps};
use cell_core::pool::{self, Pools};
use cell_core::topology::{
    self, ContainerView, EndpointView, HostInterface, NetworkView, PortView, Topology,
};
use cell_net::driver;
use cell_store::{NetworkOrigin, Store};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::HashMap;
use std::net::IpAddr;

/// The name of celld's predefined network.
pub const PUBLIC_NETWORK: &str = "public";

/// The bridge of the `public` network (or `cellpubN` if a link of the host
/// has that name at the first start).
pub const PUBLIC_INTERFACE: &str = "cellpub";

/// The key of the pool6 drawn at the first start, in the store's settings.
const POOL6_SETTING: &str = "pool6";

/// celld's `pool` and `pool6` keys, checked ([`pool::parse_pool`],
/// [`pool::parse_pool6`]); absent ones take their defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolConfig {
    /// The IPv4 pool; pot's 10.192.0.0/10 when absent.
    pub pool: Option<Ipv4Net>,
    /// The IPv6 pool; a ULA /48 with a random global id drawn at the first
    /// start and kept in the store when absent (RFC 4193).
    pub pool6: Option<Ipv6Net>,
}

impl PoolConfig {
    /// The pools this config gives with `store`: pool6, when not given, is
    /// the one drawn at the first start (and drawn now if this is it).
    pub(crate) fn resolve(&self, store: &mut Store) -> Result<Pools> {
        let pool = match self.pool {
            Some(pool) => pool,
            None => pool::parse_pool(pool::DEFAULT_POOL)?,
        };
        let pool6 = match self.pool6 {
            Some(pool6) => pool6,
            None => {
                let drawn = pool::ula_pool6(pool::random_global_id()).to_string();
                let kept = store
                    .setting_or_insert(POOL6_SETTING, &drawn)
                    .context(|| "failed to keep the pool6".into())?;
                kept.parse().map_err(|_| {
                    EngineError::User(CoreError::internal(format!(
                        "the store's pool6 '{kept}' is not an IPv6 CIDR"
                    )))
                })?
            }
        };
        Ok(Pools { pool, pool6 })
    }
}

/// Refuses pools that overlap a network whose subnet was not carved from
/// them (given with `--subnet`, or carved from an earlier pool elsewhere),
/// naming both: such a network would be handed out again.
pub(crate) fn check_pools_beside(
    pools: &Pools,
    networks: &[Network],
    origins: &HashMap<String, NetworkOrigin>,
) -> Result<()> {
    for net in networks {
        let origin = origins.get(&net.id).copied().unwrap_or_default();
        check_beside_pools(pools, net, origin)?;
    }
    Ok(())
}

/// The check of [`check_pools_beside`] for one network.
fn check_beside_pools(pools: &Pools, net: &Network, origin: NetworkOrigin) -> Result<()> {
    let own = [
        (
            net.subnet.map(IpNet::V4),
            origin.subnet_from_pool,
            IpNet::V4(pools.pool),
            "pool",
        ),
        (
            net.subnet6.map(IpNet::V6),
            origin.subnet6_from_pool,
            IpNet::V6(pools.pool6),
            "pool6",
        ),
    ];
    for (subnet, carved, pool, key) in own {
        if let (Some(subnet), false) = (subnet, carved)
            && overlaps(subnet, pool)
        {
            return Err(CoreError::conflict(format!(
                "subnet {subnet} of network '{}' overlaps celld's {key} {pool}, whose blocks go to networks created without a subnet",
                net.name
            ))
            .into());
        }
    }
    Ok(())
}

impl Engine {
    /// The pools networks are carved from.
    pub fn pools(&self) -> Pools {
        self.pools
    }

    /// Whether `network` is celld's `public` network.
    pub(crate) fn is_public(&self, network: &Network) -> bool {
        self.public_id.get() == Some(&network.id)
    }

    /// Carves the blocks `valid` asks for from the pools, clear of the
    /// `existing` networks and of what the `host` holds; the caller holds
    /// the network-create lock. An exhausted pool is a conflict naming it;
    /// a block larger than the pool is invalid.
    pub(crate) fn carve_blocks(
        &self,
        valid: &mut ValidNetwork,
        existing: &[Network],
        host: &[HostPrefix],
    ) -> Result<()> {
        let Some(request) = valid.pool_request else {
            return Ok(());
        };
        let taken: Vec<IpNet> = existing
            .iter()
            .flat_map(|n| [n.subnet.map(IpNet::V4), n.subnet6.map(IpNet::V6)])
            .flatten()
            .chain(host.iter().map(|h| h.prefix))
            .collect();
        let name = &valid.name;
        let subnet = match request.prefix4 {
            None => None,
            Some(prefix) if prefix < self.pools.pool.prefix_len() => {
                return Err(CoreError::invalid(format!(
                    "network '{name}' needs a /{prefix}, larger than celld's pool {} (give --subnet, or a smaller --size)",
                    self.pools.pool
                ))
                .into());
            }
            Some(prefix) => Some(
                pool::carve_v4(self.pools.pool, prefix, &taken)
                    .ok_or_else(|| exhausted("pool", &IpNet::V4(self.pools.pool), prefix, name))?,
            ),
        };
        let subnet6 = if request.subnet6 {
            Some(
                pool::carve_v6(self.pools.pool6, pool::BLOCK_PREFIX_V6, &taken).ok_or_else(|| {
                    exhausted("pool6", &IpNet::V6(self.pools.pool6), pool::BLOCK_PREFIX_V6, name)
                })?,
            )
        } else {
            None
        };
        valid.take_blocks(subnet, subnet6);
        Ok(())
    }

    /// Refuses a new network whose own subnets overlap the pools.
    pub(crate) fn check_beside_pools(&self, network: &Network, origin: NetworkOrigin) -> Result<()> {
        check_beside_pools(&self.pools, network, origin)
    }

    /// Makes the `public` network's row if it is missing (the first start);
    /// called when the engine opens, before reconciliation rebuilds the
    /// firewall from the rows.
    pub(crate) fn ensure_public(&self) -> Result<()> {
        let existing = self.networks()?;
        let origins = self
            .read()?
            .network_origins()
            .context(|| "failed to read networks".into())?;
        if let Some(public) = existing.iter().find(|n| n.name == PUBLIC_NETWORK) {
            if !origins.get(&public.id).is_some_and(|o| o.predefined) {
                tracing::warn!("a network named 'public' that a user made stands in for celld's own");
                return Ok(());
            }
            // Its NAT interface is brought up to date with its bridge, not
            // here: a restart changes nothing of what runs.
            let _ = self.public_id.set(public.id.clone());
            return Ok(());
        }
        let mut valid = CreateNetwork {
            name: PUBLIC_NETWORK.into(),
            net_type: Some(NetworkType::Bridge.as_str().into()),
            ..CreateNetwork::default()
        }
        .validate()?;
        // A pool smaller than a /24 is given whole.
        if let Some(request) = valid.pool_request.as_mut() {
            request.prefix4 = Some(pool::DEFAULT_BLOCK_PREFIX_V4.max(self.pools.pool.prefix_len()));
        }
        let host = self.host_prefixes(&existing)?;
        self.carve_blocks(&mut valid, &existing, &host)
            .map_err(|e| match e {
                EngineError::User(e) => EngineError::User(CoreError {
                    kind: e.kind,
                    message: format!("cannot make the public network: {}", e.message),
                }),
                other => other,
            })?;
        let mut interface = PUBLIC_INTERFACE.to_string();
        for n in 1.. {
            let taken = existing.iter().any(|e| e.interface == interface);
            if !taken && !self.host_link_exists(&interface)? {
                break;
            }
            interface = format!("{PUBLIC_INTERFACE}{n}");
        }
        let network = valid.into_network(cell_core::ids::new_id(), interface, host_default_interface());
        let origin = NetworkOrigin {
            predefined: true,
            subnet_from_pool: true,
            subnet6_from_pool: false,
        };
        self.store()
            .insert_network_with_origin(&network, origin)
            .context(|| "failed to record the public network".into())?;
        let _ = self.public_id.set(network.id.clone());
        tracing::info!(subnet = ?network.subnet, interface = %network.interface, "made the public network");
        Ok(())
    }

    /// Makes the `public` network's bridge if it is not there (its first
    /// join since celld started, or since the host lost it), with NAT out
    /// of the host's current default interface; returns the network as it
    /// now is. Serialized, so two first joins make one bridge.
    pub(crate) fn bring_up_public(&self, network: &Network) -> Result<Network> {
        let _guard = crate::lock(&self.public_lock);
        let context = || "failed to bring up the public network".to_string();
        let current = self
            .read()?
            .network_by_id(&network.id)
            .context(context)?
            .unwrap_or_else(|| network.clone());
        if self.host_link_exists(&current.interface)? {
            return Ok(current);
        }
        let nat = host_default_interface();
        let current = if nat != current.nat {
            let updated = Network {
                nat: nat.clone(),
                ..current.clone()
            };
            driver::replace_network_elements(self.net.host(), &current, &updated).context(context)?;
            if let Err(e) = self.store().set_network_nat(&current.id, nat.as_deref()) {
                // Put the elements back as the row says.
                let undo = driver::replace_network_elements(self.net.host(), &updated, &current)
                    .err()
                    .map(|u| EngineError::from_net(u, context));
                return Err(EngineError::with_undo(
                    EngineError::Store {
                        context: context(),
                        source: e,
                    },
                    undo.into_iter().collect(),
                ));
            }
            updated
        } else {
            current
        };
        driver::setup_network_links(self.net.host(), &current).context(context)?;
        tracing::info!(interface = %current.interface, nat = ?current.nat, "the public network's bridge is up");
        Ok(current)
    }

    /// What `cell network show [NETWORK]` shows: the pools, the networks
    /// (one, or all) with their address maps, the host's interfaces and the
    /// containers on those networks with their published ports.
    pub fn topology(&self, reference: Option<&str>) -> Result<Topology> {
        let all_networks = self.networks()?;
        let networks = match reference {
            Some(reference) => vec![self.find_network(reference)?],
            None => all_networks.clone(),
        };
        let store = self.read()?;
        let context = || "failed to read the topology".to_string();
        let origins = store.network_origins().context(context)?;
        let containers: HashMap<String, Container> = store
            .containers()
            .context(context)?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        // One read of every endpoint, not one per network: the view of a
        // thousand networks stays one query.
        let mut by_network: HashMap<String, Vec<cell_core::model::Endpoint>> = HashMap::new();
        let endpoints = match reference {
            Some(_) => store.endpoints_of_network(&networks[0].id),
            None => store.endpoints(),
        }
        .context(context)?;
        for ep in endpoints {
            by_network.entry(ep.network_id.clone()).or_default().push(ep);
        }
        let mut views = Vec::new();
        let mut on_networks: Vec<(String, EndpointView)> = Vec::new();
        for net in &networks {
            let mut taken: Vec<(IpAddr, String)> = Vec::new();
            for ep in by_network.get(&net.id).into_iter().flatten() {
                let name = containers
                    .get(&ep.container_id)
                    .map_or_else(|| ep.container_id.clone(), |c| c.name.clone());
                taken.extend(ep.ip_address.map(|a| (IpAddr::V4(a), name.clone())));
                taken.extend(ep.ip_address6.map(|a| (IpAddr::V6(a), name.clone())));
                on_networks.push((
                    ep.container_id.clone(),
                    EndpointView {
                        network: net.name.clone(),
                        ip_address: ep.ip_address.map(|a| a.to_string()),
                        ip_address6: ep.ip_address6.map(|a| a.to_string()),
                    },
                ));
            }
            let (addresses, free, free6) = topology::address_map(net, &taken);
            let origin = origins.get(&net.id).copied().unwrap_or_default();
            views.push(NetworkView {
                id: net.id.clone(),
                name: net.name.clone(),
                net_type: net.net_type.as_str().into(),
                interface: net.interface.clone(),
                predefined: origin.predefined,
                from_pool: origin.subnet_from_pool,
                from_pool6: origin.subnet6_from_pool,
                subnet: net.subnet.map(|s| s.to_string()),
                subnet6: net.subnet6.map(|s| s.to_string()),
                nat: net.nat.clone(),
                internal: net.internal,
                addresses,
                free,
                free6: free6.map(|f| f.to_string()),
            });
        }
        drop(store);
        let mut shown: Vec<ContainerView> = Vec::new();
        for (id, endpoint) in on_networks {
            let Some(container) = containers.get(&id) else {
                continue;
            };
            match shown.iter_mut().find(|c| c.id == id) {
                Some(view) => view.endpoints.push(endpoint),
                None => shown.push(ContainerView {
                    id: container.id.clone(),
                    name: container.name.clone(),
                    running: container.running,
                    driver: container.network_driver.to_string(),
                    endpoints: vec![endpoint],
                    ports: published_ports(container),
                }),
            }
        }
        Ok(Topology {
            pool: self.pools.pool.to_string(),
            pool6: self.pools.pool6.to_string(),
            host_interfaces: self.host_interfaces(&all_networks)?,
            networks: views,
            containers: shown,
        })
    }

    /// The host's own interfaces (not loopback, not cell's bridges and
    /// veths) with their addresses.
    fn host_interfaces(&self, networks: &[Network]) -> Result<Vec<HostInterface>> {
        let links = self.net.host().links;
        let context = || "failed to list the host's interfaces".to_string();
        let is_cells = |name: &str| {
            driver::is_host_ifname(name)
                || networks
                    .iter()
                    .any(|n| n.net_type != NetworkType::Custom && n.interface == name)
        };
        let mut interfaces = Vec::new();
        for link in links.list_links().context(context)? {
            if link.name == "lo" || is_cells(&link.name) {
                continue;
            }
            let addresses = links
                .list_addresses(&link.name)
                .context(context)?
                .iter()
                .filter(|a| !matches!(a, IpNet::V6(n) if n.addr().segments()[0] & 0xffc0 == 0xfe80))
                .map(|a| a.to_string())
                .collect();
            interfaces.push(HostInterface {
                name: link.name,
                addresses,
            });
        }
        Ok(interfaces)
    }
}

/// A container's published ports as the topology shows them. The one
/// place that reads how published ports are recorded, so a change there
/// (the host port celld chose for `-p :80`, say) is made here alone.
fn published_ports(container: &Container) -> Vec<PortView> {
    container
        .public_ports
        .iter()
        .map(|p| PortView {
            host_ip: p.host_ip.map(|ip| ip.to_string()),
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: p.protocol.to_string(),
        })
        .collect()
}

/// The error of an exhausted pool.
fn exhausted(key: &str, pool: &IpNet, prefix: u8, name: &str) -> EngineError {
    CoreError::conflict(format!(
        "celld's {key} {pool} has no free /{prefix} left for network '{name}' (other networks and the host's addresses and routes hold the rest)"
    ))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, subnet: &str) -> Network {
        Network {
            id: format!("{name:0>12}"),
            name: name.into(),
            net_type: NetworkType::Bridge,
            interface: "cell0".into(),
            subnet: Some(subnet.parse().unwrap()),
            subnet6: None,
            gateway: None,
            gateway6: None,
            nat: None,
            icc: true,
            internal: false,
            antispoof: true,
        }
    }

    #[test]
    fn a_pool_over_a_network_of_its_own_subnet_is_refused() {
        let pools = Pools {
            pool: "10.50.0.0/16".parse().unwrap(),
            pool6: "fd00:1::/48".parse().unwrap(),
        };
        let mine = net("mine", "10.50.3.0/24");
        let carved = net("carved", "10.50.0.0/24");
        let beside = net("beside", "10.51.0.0/24");
        let mut origins = HashMap::new();
        origins.insert(
            carved.id.clone(),
            NetworkOrigin {
                subnet_from_pool: true,
                ..NetworkOrigin::default()
            },
        );
        // The positive control: carved and beside networks pass.
        check_pools_beside(&pools, &[carved.clone(), beside.clone()], &origins).unwrap();
        let err = check_pools_beside(&pools, &[carved, beside, mine], &origins).unwrap_err();
        assert_eq!(
            err.to_string(),
            "subnet 10.50.3.0/24 of network 'mine' overlaps celld's pool 10.50.0.0/16, whose blocks go to networks created without a subnet"
        );
    }
}
