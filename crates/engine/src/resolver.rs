//! What the engine tells the resolver of container names ([`Resolver`]):
//! a container's names and endpoints when it starts, connects or
//! disconnects, and at celld's start for every container that runs; their
//! withdrawal when it stops or goes. Each call is made under the
//! container's lock, after the store has the change, so the resolver sees
//! a container's changes in their order.
//!
//! [`Resolver`]: crate::Resolver

use crate::Engine;
use crate::backends::{ContainerNames, NamedEndpoint};
use crate::error::Result;
use cell_core::model::Container;
use cell_net::container_driver::container_driver;

impl Engine {
    /// Publishes a running container's names with its current endpoints;
    /// one without endpoints (no network, or the last one left) is
    /// withdrawn instead, as it has no name to give nor a network to ask
    /// about.
    pub(crate) fn publish_names(&self, container: &Container) -> Result<()> {
        let endpoints = self.endpoints_with_networks(&container.id)?;
        if endpoints.is_empty() {
            self.resolver.withdraw(&container.id);
            return Ok(());
        }
        // Its name is published whatever its mode (others on its networks
        // may ask for it); its own queries are answered only in mode cell.
        let serves_own_queries =
            container.dns.is_cell() && container_driver(container.network_driver).has_own_netns();
        let names = ContainerNames {
            id: container.id.clone(),
            name: container.name.clone(),
            netns: serves_own_queries.then(|| self.netns_path(&container.id)),
            endpoints: endpoints
                .into_iter()
                .map(|(network, ep)| NamedEndpoint {
                    network_id: network.id,
                    network: network.name,
                    ipv4: ep.ip_address,
                    ipv6: ep.ip_address6,
                })
                .collect(),
        };
        self.resolver.publish(&names);
        Ok(())
    }

    /// After a change of a container's endpoints: publishes it again if it
    /// runs. A failure to read the store is logged: the change itself is
    /// done, and names are a service on top of it.
    pub(crate) fn refresh_names(&self, container_id: &str) {
        let refreshed = self.find_container(container_id).and_then(|container| {
            if container.running {
                self.publish_names(&container)
            } else {
                Ok(())
            }
        });
        if let Err(e) = refreshed {
            tracing::warn!(container = %container_id, "failed to update the resolver's names: {e}");
        }
    }

    /// A container stopped or is gone: its names go.
    pub(crate) fn withdraw_names(&self, container_id: &str) {
        self.resolver.withdraw(container_id);
    }
}
