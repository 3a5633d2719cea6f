//! The name table: every running container's names and addresses, indexed
//! for the questions a query asks (a name, a name on a network, an
//! address). A table is never changed in place: [`NameTable::with`] and
//! [`NameTable::without`] make the next one, which the server swaps in
//! whole, so a query reads one consistent table without a lock.

use cell_engine::ContainerNames;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Running containers' names and addresses.
#[derive(Debug, Default, Clone)]
pub struct NameTable {
    containers: HashMap<String, Arc<ContainerNames>>,
    /// Lower-cased name to the ids of the containers so named (DNS names
    /// are case-insensitive; container names are not).
    by_name: HashMap<String, Vec<String>>,
    /// Lower-cased network name to the network's id.
    networks: HashMap<String, String>,
    /// Address to the containers holding it, with the network it is on.
    by_address: HashMap<IpAddr, Vec<(String, String)>>,
}

/// What a question about a container's name (or address) finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<T> {
    /// Containers sharing a network with the asker: their addresses on
    /// those networks (or their names).
    Visible(Vec<T>),
    /// Containers that share no network with the asker (or not the one the
    /// name says): the asker must not learn of them.
    Hidden,
    /// Not a container's name (or address): the host's resolvers may know.
    Unknown,
}

impl NameTable {
    /// The table from a list of containers.
    pub fn from_containers(containers: impl IntoIterator<Item = ContainerNames>) -> Self {
        Self::index(
            containers
                .into_iter()
                .map(|c| (c.id.clone(), Arc::new(c)))
                .collect(),
        )
    }

    /// This table with `names` added, or replacing what it held of that
    /// container.
    pub fn with(&self, names: ContainerNames) -> Self {
        let mut containers = self.containers.clone();
        containers.insert(names.id.clone(), Arc::new(names));
        Self::index(containers)
    }

    /// This table without the container `id` (the same table if it had
    /// none).
    pub fn without(&self, id: &str) -> Self {
        let mut containers = self.containers.clone();
        containers.remove(id);
        Self::index(containers)
    }

    /// How many containers it names.
    pub fn len(&self) -> usize {
        self.containers.len()
    }

    /// Whether it names no container.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    /// The container `id`'s entry.
    pub fn container(&self, id: &str) -> Option<&ContainerNames> {
        self.containers.get(id).map(|c| &**c)
    }

    fn index(containers: HashMap<String, Arc<ContainerNames>>) -> Self {
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        let mut networks = HashMap::new();
        let mut by_address: HashMap<IpAddr, Vec<(String, String)>> = HashMap::new();
        for c in containers.values() {
            by_name
                .entry(c.name.to_ascii_lowercase())
                .or_default()
                .push(c.id.clone());
            for ep in &c.endpoints {
                networks.insert(ep.network.to_ascii_lowercase(), ep.network_id.clone());
                let addresses = ep.ipv4.map(IpAddr::V4).into_iter().chain(ep.ipv6.map(IpAddr::V6));
                for address in addresses {
                    by_address
                        .entry(address)
                        .or_default()
                        .push((c.id.clone(), ep.network_id.clone()));
                }
            }
        }
        Self {
            containers,
            by_name,
            networks,
            by_address,
        }
    }

    /// The networks of the container `id`.
    fn networks_of(&self, id: &str) -> impl Iterator<Item = &str> {
        self.containers
            .get(id)
            .into_iter()
            .flat_map(|c| c.endpoints.iter().map(|ep| ep.network_id.as_str()))
    }

    fn is_on(&self, id: &str, network_id: &str) -> bool {
        self.networks_of(id).any(|n| n == network_id)
    }

    /// What `asker` may learn of the name `name` (lower case, without the
    /// final dot): `CONTAINER` (its addresses on every network it shares
    /// with the asker) or `CONTAINER.NETWORK` (its address on that network,
    /// if the asker is on it too). Names may hold dots themselves, so every
    /// split is tried, the whole name first.
    pub fn lookup_name(&self, asker: &str, name: &str) -> Found<IpAddr> {
        let mut found = Found::Unknown;
        let whole = std::iter::once((name, None));
        let splits = name
            .match_indices('.')
            .map(|(i, _)| (&name[..i], Some(&name[i + 1..])));
        for (container, network) in whole.chain(splits) {
            let Some(ids) = self.by_name.get(container) else {
                continue;
            };
            let network_id = match network {
                None => None,
                Some(network) => match self.networks.get(network) {
                    Some(id) => Some(id.as_str()),
                    None => continue,
                },
            };
            let mut addresses = Vec::new();
            let mut visible = false;
            for id in ids {
                let Some(c) = self.containers.get(id) else {
                    continue;
                };
                for ep in &c.endpoints {
                    let wanted = network_id.is_none_or(|n| n == ep.network_id);
                    if wanted && self.is_on(asker, &ep.network_id) {
                        visible = true;
                        let held = ep.ipv4.map(IpAddr::V4).into_iter().chain(ep.ipv6.map(IpAddr::V6));
                        for address in held {
                            if !addresses.contains(&address) {
                                addresses.push(address);
                            }
                        }
                    }
                }
            }
            if visible {
                return Found::Visible(addresses);
            }
            found = Found::Hidden;
        }
        found
    }

    /// The names of the containers holding `address` on a network the
    /// asker is on; [`Found::Hidden`] if only containers the asker shares
    /// no network with hold it.
    pub fn lookup_address(&self, asker: &str, address: IpAddr) -> Found<&str> {
        let Some(holders) = self.by_address.get(&address) else {
            return Found::Unknown;
        };
        let mut names: Vec<&str> = Vec::new();
        for (id, network) in holders {
            if let Some(c) = self.containers.get(id)
                && self.is_on(asker, network)
                && !names.contains(&c.name.as_str())
            {
                names.push(&c.name);
            }
        }
        if names.is_empty() {
            Found::Hidden
        } else {
            Found::Visible(names)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cell_engine::NamedEndpoint;

    /// A container on `networks`, each `(network, ipv4, ipv6)`; network
    /// ids are the names with `id-` before them.
    pub(crate) fn names(name: &str, networks: &[(&str, &str, Option<&str>)]) -> ContainerNames {
        ContainerNames {
            id: format!("id-{name}"),
            name: name.into(),
            netns: Some(format!("/run/netns/{name}").into()),
            endpoints: networks
                .iter()
                .map(|(network, v4, v6)| NamedEndpoint {
                    network_id: format!("id-{network}"),
                    network: network.to_string(),
                    ipv4: Some(v4.parse().unwrap()),
                    ipv6: v6.map(|a| a.parse().unwrap()),
                })
                .collect(),
        }
    }

    /// web and db on front, db and cache on back, lone on its own.
    pub(crate) fn table() -> NameTable {
        NameTable::from_containers([
            names("web", &[("front", "10.1.0.2", Some("fd00:1::2"))]),
            names("db", &[("front", "10.1.0.3", None), ("back", "10.2.0.3", None)]),
            names("cache", &[("back", "10.2.0.4", None)]),
            names("lone", &[("other", "10.3.0.2", None)]),
            names("my.app", &[("front", "10.1.0.9", None)]),
        ])
    }

    fn visible(addresses: &[&str]) -> Found<IpAddr> {
        Found::Visible(addresses.iter().map(|a| a.parse().unwrap()).collect())
    }

    #[test]
    fn names_resolve_on_shared_networks_only() {
        let t = table();
        assert_eq!(t.lookup_name("id-web", "db"), visible(&["10.1.0.3"]));
        assert_eq!(t.lookup_name("id-db", "web"), visible(&["10.1.0.2", "fd00:1::2"]));
        assert_eq!(t.lookup_name("id-cache", "db"), visible(&["10.2.0.3"]));
        assert_eq!(t.lookup_name("id-db", "cache"), visible(&["10.2.0.4"]));
        assert_eq!(t.lookup_name("id-web", "cache"), Found::Hidden);
        assert_eq!(t.lookup_name("id-web", "lone"), Found::Hidden);
        assert_eq!(
            t.lookup_name("id-web", "web"),
            visible(&["10.1.0.2", "fd00:1::2"])
        );
        assert_eq!(t.lookup_name("id-web", "example.com"), Found::Unknown);
    }

    #[test]
    fn name_dot_network_gives_the_address_on_that_network() {
        let t = table();
        assert_eq!(t.lookup_name("id-cache", "db.back"), visible(&["10.2.0.3"]));
        assert_eq!(t.lookup_name("id-web", "db.front"), visible(&["10.1.0.3"]));
        // The asker is not on back: db's address there stays hidden.
        assert_eq!(t.lookup_name("id-web", "db.back"), Found::Hidden);
        assert_eq!(t.lookup_name("id-web", "db.nowhere"), Found::Unknown);
        // Names with dots of their own.
        assert_eq!(t.lookup_name("id-web", "my.app"), visible(&["10.1.0.9"]));
        assert_eq!(t.lookup_name("id-web", "my.app.front"), visible(&["10.1.0.9"]));
    }

    #[test]
    fn addresses_name_their_containers_on_shared_networks_only() {
        let t = table();
        let address = |a: &str| a.parse().unwrap();
        assert_eq!(
            t.lookup_address("id-web", address("10.1.0.3")),
            Found::Visible(vec!["db"])
        );
        assert_eq!(t.lookup_address("id-web", address("10.2.0.4")), Found::Hidden);
        assert_eq!(
            t.lookup_address("id-web", address("198.51.100.1")),
            Found::Unknown
        );
    }

    #[test]
    fn with_replaces_and_without_removes() {
        let t = table();
        let moved = t.with(names("cache", &[("front", "10.1.0.4", None)]));
        assert_eq!(moved.lookup_name("id-web", "cache"), visible(&["10.1.0.4"]));
        assert_eq!(moved.len(), t.len());
        let gone = moved.without("id-cache");
        assert_eq!(gone.lookup_name("id-web", "cache"), Found::Unknown);
        assert_eq!(gone.without("id-cache").len(), gone.len());
    }
}
