//! Network and endpoint rows.
//!
//! A [`Network`] is what `network create` asked for; an [`Endpoint`] attaches
//! one container to one network and holds its addresses. The endpoints table
//! is also the address lease table: its UNIQUE constraints (see
//! [`crate::migrations`]) refuse a second endpoint with the same address in a
//! network, so a racing or buggy allocation fails with
//! [`crate::StoreError::is_constraint_violation`] instead of sharing an
//! address. Addresses, subnets and the network type are stored as text and
//! parsed back on read; a value that does not parse is
//! [`crate::StoreError::Corrupt`].

use crate::{Result, Store, StoreError};
use cell_core::model::{Endpoint, Network};
use rusqlite::{OptionalExtension, Row, params};
use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

const COLUMNS: &str =
    "id, name, type, interface, subnet, subnet6, gateway, gateway6, nat, icc, internal, antispoof";

/// The raw columns of a network row, parsed outside the rusqlite closure so
/// that a corrupt column is a [`StoreError::Corrupt`], not a panic.
struct NetworkRow {
    id: String,
    name: String,
    net_type: String,
    interface: String,
    subnet: Option<String>,
    subnet6: Option<String>,
    gateway: Option<String>,
    gateway6: Option<String>,
    nat: Option<String>,
    icc: bool,
    internal: bool,
    antispoof: bool,
}

fn network_row(row: &Row<'_>) -> rusqlite::Result<NetworkRow> {
    Ok(NetworkRow {
        id: row.get(0)?,
        name: row.get(1)?,
        net_type: row.get(2)?,
        interface: row.get(3)?,
        subnet: row.get(4)?,
        subnet6: row.get(5)?,
        gateway: row.get(6)?,
        gateway6: row.get(7)?,
        nat: row.get(8)?,
        icc: row.get(9)?,
        internal: row.get(10)?,
        antispoof: row.get(11)?,
    })
}

impl NetworkRow {
    fn into_network(self) -> Result<Network> {
        Ok(Network {
            net_type: self
                .net_type
                .parse()
                .map_err(|e: cell_core::CoreError| StoreError::Corrupt(e.message))?,
            subnet: parse_optional("subnet", self.subnet.as_deref())?,
            subnet6: parse_optional("subnet6", self.subnet6.as_deref())?,
            gateway: parse_optional("gateway", self.gateway.as_deref())?,
            gateway6: parse_optional("gateway6", self.gateway6.as_deref())?,
            id: self.id,
            name: self.name,
            interface: self.interface,
            nat: self.nat,
            icc: self.icc,
            internal: self.internal,
            antispoof: self.antispoof,
        })
    }
}

const ENDPOINT_COLUMNS: &str = "id, network_id, container_id, epair, ip_address, ip_address6, mac";

/// The raw columns of an endpoint row; see [`NetworkRow`].
struct EndpointRow {
    id: String,
    network_id: String,
    container_id: String,
    epair: Option<String>,
    ip_address: Option<String>,
    ip_address6: Option<String>,
    mac: Option<String>,
}

fn endpoint_row(row: &Row<'_>) -> rusqlite::Result<EndpointRow> {
    Ok(EndpointRow {
        id: row.get(0)?,
        network_id: row.get(1)?,
        container_id: row.get(2)?,
        epair: row.get(3)?,
        ip_address: row.get(4)?,
        ip_address6: row.get(5)?,
        mac: row.get(6)?,
    })
}

impl EndpointRow {
    fn into_endpoint(self) -> Result<Endpoint> {
        Ok(Endpoint {
            ip_address: parse_optional("ip_address", self.ip_address.as_deref())?,
            ip_address6: parse_optional("ip_address6", self.ip_address6.as_deref())?,
            id: self.id,
            network_id: self.network_id,
            container_id: self.container_id,
            epair: self.epair,
            mac: self.mac,
        })
    }
}

/// Parses a nullable text column (an address or a subnet).
fn parse_optional<T>(column: &str, text: Option<&str>) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: Display,
{
    text.map(|text| {
        text.parse()
            .map_err(|e| StoreError::Corrupt(format!("column {column}: bad value '{text}': {e}")))
    })
    .transpose()
}

/// Where a network's blocks came from, and whether celld made it itself;
/// kept beside the [`Network`] row, which says what the network is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkOrigin {
    /// celld made it (`public`): it is never removed or pruned.
    pub predefined: bool,
    /// Its IPv4 block was carved from the pool.
    pub subnet_from_pool: bool,
    /// Its IPv6 block was carved from the pool6.
    pub subnet6_from_pool: bool,
}

/// Inserts a network row; `created` only orders `networks()` (the model
/// has no use for it), so SQLite's clock fills it (to the millisecond;
/// rowid breaks ties).
fn insert_network(conn: &rusqlite::Connection, net: &Network) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO networks ({COLUMNS}, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        ),
        params![
            net.id,
            net.name,
            net.net_type.as_str(),
            net.interface,
            net.subnet.map(|s| s.to_string()),
            net.subnet6.map(|s| s.to_string()),
            net.gateway.map(|a| a.to_string()),
            net.gateway6.map(|a| a.to_string()),
            net.nat,
            net.icc,
            net.internal,
            net.antispoof
        ],
    )?;
    Ok(())
}

impl Store {
    /// Records a new network. Fails with a constraint violation if its id,
    /// name or interface is taken.
    pub fn insert_network(&mut self, net: &Network) -> Result<()> {
        insert_network(&self.conn, net)
    }

    /// Records a new network with where its blocks came from and whether
    /// celld made it itself; see [`NetworkOrigin`].
    pub fn insert_network_with_origin(&mut self, net: &Network, origin: NetworkOrigin) -> Result<()> {
        let tx = self.conn.transaction()?;
        insert_network(&tx, net)?;
        tx.execute(
            "UPDATE networks SET predefined = ?2, subnet_from_pool = ?3, subnet6_from_pool = ?4
             WHERE id = ?1",
            params![
                net.id,
                origin.predefined,
                origin.subnet_from_pool,
                origin.subnet6_from_pool
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Where each network's blocks came from, by network id.
    pub fn network_origins(&self) -> Result<HashMap<String, NetworkOrigin>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, predefined, subnet_from_pool, subnet6_from_pool FROM networks")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    NetworkOrigin {
                        predefined: r.get(1)?,
                        subnet_from_pool: r.get(2)?,
                        subnet6_from_pool: r.get(3)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Changes the interface a network's NAT goes out of (`public` follows
    /// the host's default route).
    pub fn set_network_nat(&mut self, id: &str, nat: Option<&str>) -> Result<()> {
        self.conn
            .execute("UPDATE networks SET nat = ?2 WHERE id = ?1", params![id, nat])?;
        Ok(())
    }

    /// A setting celld keeps (see [`crate::migrations`]), if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets `key` to `value` unless it is set already, and returns the value
    /// kept: the first writer wins, so a value drawn at random is drawn once.
    pub fn setting_or_insert(&mut self, key: &str, value: &str) -> Result<String> {
        self.conn.execute(
            "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(self
            .setting(key)?
            .expect("the setting was just written or was there"))
    }

    /// All networks, oldest first.
    pub fn networks(&self) -> Result<Vec<Network>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM networks ORDER BY created, rowid"))?;
        let rows = stmt
            .query_map([], network_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(NetworkRow::into_network).collect()
    }

    /// The network with this name.
    pub fn network_by_name(&self, name: &str) -> Result<Option<Network>> {
        self.query_network("name = ?1", name)
    }

    /// The network with this id.
    pub fn network_by_id(&self, id: &str) -> Result<Option<Network>> {
        self.query_network("id = ?1", id)
    }

    /// The network on this host interface (interfaces are unique, so a new
    /// network can be refused before it touches the kernel).
    pub fn network_by_interface(&self, interface: &str) -> Result<Option<Network>> {
        self.query_network("interface = ?1", interface)
    }

    fn query_network(&self, condition: &str, value: &str) -> Result<Option<Network>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM networks WHERE {condition}"),
                [value],
                network_row,
            )
            .optional()?;
        row.map(NetworkRow::into_network).transpose()
    }

    /// Ids of the networks whose id starts with `prefix`.
    pub fn network_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM networks WHERE substr(id, 1, length(?1)) = ?1")?;
        Ok(stmt
            .query_map([prefix], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets a network and, by cascade, its endpoints. Succeeds if it is
    /// already absent.
    pub fn delete_network(&mut self, id: &str) -> Result<()> {
        self.conn.execute("DELETE FROM networks WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Records a new endpoint, which leases its addresses. Fails with a
    /// constraint violation if the container is already on the network or
    /// an address is taken there, and fails (foreign key) if the network or
    /// the container does not exist.
    pub fn insert_endpoint(&mut self, ep: &Endpoint) -> Result<()> {
        // One statement checks and inserts: a network marked for removal
        // takes no new endpoint, however the requests interleave.
        let inserted = self.conn.execute(
            &format!(
                "INSERT INTO endpoints ({ENDPOINT_COLUMNS})
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                 WHERE EXISTS (SELECT 1 FROM networks WHERE id = ?2 AND removing = 0)"
            ),
            params![
                ep.id,
                ep.network_id,
                ep.container_id,
                ep.epair,
                ep.ip_address.map(|a| a.to_string()),
                ep.ip_address6.map(|a| a.to_string()),
                ep.mac
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::NetworkRemoving {
                id: ep.network_id.clone(),
            });
        }
        Ok(())
    }

    /// Marks a network for removal, so that it takes no new endpoints; a
    /// predefined network is never marked.
    /// With `only_if_unused`, only a network without endpoints is marked
    /// (prune: the check and the mark are one statement). Returns whether
    /// it was marked (false: gone, or in use).
    pub fn mark_network_removing(&mut self, id: &str, only_if_unused: bool) -> Result<bool> {
        let unused = if only_if_unused {
            "AND NOT EXISTS (SELECT 1 FROM endpoints WHERE network_id = ?1)"
        } else {
            ""
        };
        Ok(self.conn.execute(
            // celld's own networks (`public`) are never removed.
            &format!("UPDATE networks SET removing = 1 WHERE id = ?1 AND predefined = 0 {unused}"),
            [id],
        )? > 0)
    }

    /// Ids of the networks marked for removal.
    pub fn networks_being_removed(&self) -> Result<Vec<String>> {
        self.ids("SELECT id FROM networks WHERE removing = 1 ORDER BY rowid")
    }

    /// Marks an endpoint as being detached: whatever happens next, it is
    /// not attached again, and reconciliation finishes its removal.
    pub fn mark_endpoint_detaching(&mut self, id: &str) -> Result<()> {
        self.conn
            .execute("UPDATE endpoints SET detaching = 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Ids of the endpoints marked as being detached.
    pub fn endpoints_being_detached(&self) -> Result<Vec<String>> {
        self.ids("SELECT id FROM endpoints WHERE detaching = 1 ORDER BY rowid")
    }

    /// The ids a query without parameters selects.
    fn ids(&self, sql: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(sql)?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The container's endpoint on the network.
    pub fn endpoint(&self, network_id: &str, container_id: &str) -> Result<Option<Endpoint>> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE network_id = ?1 AND container_id = ?2"
                ),
                [network_id, container_id],
                endpoint_row,
            )
            .optional()?;
        row.map(EndpointRow::into_endpoint).transpose()
    }

    /// All endpoints, in the order they were added, for reconciliation.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        self.query_endpoints("", &[])
    }

    /// The network's endpoints, in the order they were added.
    pub fn endpoints_of_network(&self, network_id: &str) -> Result<Vec<Endpoint>> {
        self.query_endpoints("WHERE network_id = ?1", &[network_id])
    }

    /// The container's endpoints, in the order they were added.
    pub fn endpoints_of_container(&self, container_id: &str) -> Result<Vec<Endpoint>> {
        self.query_endpoints("WHERE container_id = ?1", &[container_id])
    }

    fn query_endpoints(&self, filter: &str, values: &[&str]) -> Result<Vec<Endpoint>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints {filter} ORDER BY rowid"
        ))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), endpoint_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(EndpointRow::into_endpoint).collect()
    }

    /// Forgets an endpoint, releasing its addresses. Succeeds if it is
    /// already absent.
    pub fn delete_endpoint(&mut self, id: &str) -> Result<()> {
        self.conn.execute("DELETE FROM endpoints WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The addresses leased in the network: those of its endpoints. The
    /// gateways are not included; they are on the [`Network`].
    pub fn addresses_in_network(&self, network_id: &str) -> Result<(HashSet<Ipv4Addr>, HashSet<Ipv6Addr>)> {
        let mut stmt = self
            .conn
            .prepare("SELECT ip_address, ip_address6 FROM endpoints WHERE network_id = ?1")?;
        let rows = stmt
            .query_map([network_id], |r| {
                Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut v4 = HashSet::new();
        let mut v6 = HashSet::new();
        for (ip_address, ip_address6) in rows {
            v4.extend(parse_optional::<Ipv4Addr>("ip_address", ip_address.as_deref())?);
            v6.extend(parse_optional::<Ipv6Addr>("ip_address6", ip_address6.as_deref())?);
        }
        Ok((v4, v6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{container, image};
    use cell_core::model::NetworkType;

    fn bridge(id: &str, name: &str, interface: &str) -> Network {
        Network {
            id: id.into(),
            name: name.into(),
            net_type: NetworkType::Bridge,
            interface: interface.into(),
            subnet: Some("10.13.0.0/24".parse().unwrap()),
            subnet6: Some("fd00:13::/64".parse().unwrap()),
            gateway: Some("10.13.0.1".parse().unwrap()),
            gateway6: Some("fd00:13::1".parse().unwrap()),
            nat: Some("eth0".into()),
            icc: true,
            internal: false,
            antispoof: true,
        }
    }

    fn endpoint(
        id: &str,
        network_id: &str,
        container_id: &str,
        ip: Option<&str>,
        ip6: Option<&str>,
    ) -> Endpoint {
        Endpoint {
            id: id.into(),
            network_id: network_id.into(),
            container_id: container_id.into(),
            epair: Some(format!("cellep{id}")),
            ip_address: ip.map(|a| a.parse().unwrap()),
            ip_address6: ip6.map(|a| a.parse().unwrap()),
            mac: Some("02:00:0a:0d:00:02".into()),
        }
    }

    /// A store with two networks and two containers.
    fn populated() -> Store {
        let mut store = Store::open_in_memory().unwrap();
        store.insert_image(&image()).unwrap();
        store.insert_container(&container("c00000000001", "web")).unwrap();
        store.insert_container(&container("c00000000002", "db")).unwrap();
        store
            .insert_network(&bridge("n00000000001", "front", "cell0"))
            .unwrap();
        store
            .insert_network(&bridge("n00000000002", "back", "cell1"))
            .unwrap();
        store
    }

    #[test]
    fn networks_round_trip() {
        let mut store = Store::open_in_memory().unwrap();
        let full = bridge("0123456789ab", "front", "cell0");
        let bare = Network {
            id: "ba9876543210".into(),
            name: "lo".into(),
            net_type: NetworkType::Loopback,
            interface: "cell1".into(),
            subnet: Some("10.14.0.0/24".parse().unwrap()),
            subnet6: None,
            gateway: None,
            gateway6: None,
            nat: None,
            icc: false,
            internal: true,
            antispoof: false,
        };
        store.insert_network(&full).unwrap();
        store.insert_network(&bare).unwrap();
        assert_eq!(store.networks().unwrap(), vec![full.clone(), bare.clone()]);
        assert_eq!(store.network_by_name("lo").unwrap(), Some(bare.clone()));
        assert_eq!(store.network_by_id("0123456789ab").unwrap(), Some(full.clone()));
        assert_eq!(store.network_by_interface("cell1").unwrap(), Some(bare));
        assert_eq!(store.network_by_name("nope").unwrap(), None);
        assert_eq!(store.network_ids_with_prefix("01").unwrap(), vec!["0123456789ab"]);
        assert!(store.network_ids_with_prefix("ff").unwrap().is_empty());
        store.delete_network("ba9876543210").unwrap();
        assert_eq!(store.networks().unwrap(), vec![full]);
        // Deleting what is gone is not an error.
        store.delete_network("ba9876543210").unwrap();
    }

    #[test]
    fn network_names_and_interfaces_are_unique() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .insert_network(&bridge("0123456789ab", "front", "cell0"))
            .unwrap();
        let err = store
            .insert_network(&bridge("ba9876543210", "front", "cell1"))
            .unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
        let err = store
            .insert_network(&bridge("ba9876543210", "back", "cell0"))
            .unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
        assert_eq!(store.networks().unwrap().len(), 1);
    }

    #[test]
    fn corrupt_network_columns_are_reported() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .insert_network(&bridge("0123456789ab", "front", "cell0"))
            .unwrap();
        store
            .conn
            .execute("UPDATE networks SET subnet = '10.13.0.0/99'", [])
            .unwrap();
        let err = store.network_by_name("front").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        store
            .conn
            .execute("UPDATE networks SET subnet = NULL, type = 'overlay'", [])
            .unwrap();
        let err = store.networks().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn endpoints_round_trip() {
        let mut store = populated();
        let web = endpoint(
            "e00000000001",
            "n00000000001",
            "c00000000001",
            Some("10.13.0.2"),
            Some("fd00:13::2"),
        );
        let db = Endpoint {
            epair: None,
            mac: None,
            ..endpoint("e00000000002", "n00000000001", "c00000000002", None, None)
        };
        let web_back = endpoint(
            "e00000000003",
            "n00000000002",
            "c00000000001",
            Some("10.13.0.2"),
            None,
        );
        store.insert_endpoint(&web).unwrap();
        store.insert_endpoint(&db).unwrap();
        store.insert_endpoint(&web_back).unwrap();
        assert_eq!(
            store.endpoint("n00000000001", "c00000000001").unwrap(),
            Some(web.clone())
        );
        assert_eq!(store.endpoint("n00000000002", "c00000000002").unwrap(), None);
        assert_eq!(
            store.endpoints().unwrap(),
            vec![web.clone(), db.clone(), web_back.clone()]
        );
        assert_eq!(
            store.endpoints_of_network("n00000000001").unwrap(),
            vec![web.clone(), db]
        );
        assert_eq!(
            store.endpoints_of_container("c00000000001").unwrap(),
            vec![web, web_back.clone()]
        );
        store.delete_endpoint("e00000000001").unwrap();
        store.delete_endpoint("e00000000001").unwrap();
        assert_eq!(
            store.endpoints_of_container("c00000000001").unwrap(),
            vec![web_back]
        );
    }

    #[test]
    fn addresses_are_leased_once_per_network() {
        let mut store = populated();
        store
            .insert_endpoint(&endpoint(
                "e00000000001",
                "n00000000001",
                "c00000000001",
                Some("10.13.0.2"),
                None,
            ))
            .unwrap();
        // The same IPv4 address in the same network.
        let err = store
            .insert_endpoint(&endpoint(
                "e00000000002",
                "n00000000001",
                "c00000000002",
                Some("10.13.0.2"),
                None,
            ))
            .unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
        // Neither has an IPv6 address: NULLs do not clash.
        store
            .insert_endpoint(&endpoint(
                "e00000000002",
                "n00000000001",
                "c00000000002",
                Some("10.13.0.3"),
                None,
            ))
            .unwrap();
        // The same address in another network is another lease.
        store
            .insert_endpoint(&endpoint(
                "e00000000003",
                "n00000000002",
                "c00000000001",
                Some("10.13.0.2"),
                Some("fd00:13::2"),
            ))
            .unwrap();
        // The same IPv6 address in the same network.
        let err = store
            .insert_endpoint(&endpoint(
                "e00000000004",
                "n00000000002",
                "c00000000002",
                Some("10.13.0.3"),
                Some("fd00:13::2"),
            ))
            .unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
        // The same container twice on one network.
        let err = store
            .insert_endpoint(&endpoint(
                "e00000000004",
                "n00000000001",
                "c00000000001",
                Some("10.13.0.4"),
                None,
            ))
            .unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");

        let (v4, v6) = store.addresses_in_network("n00000000001").unwrap();
        assert_eq!(
            v4,
            ["10.13.0.2".parse().unwrap(), "10.13.0.3".parse().unwrap()].into()
        );
        assert!(v6.is_empty());
        let (v4, v6) = store.addresses_in_network("n00000000002").unwrap();
        assert_eq!(v4, ["10.13.0.2".parse().unwrap()].into());
        assert_eq!(v6, ["fd00:13::2".parse().unwrap()].into());
        let (v4, v6) = store.addresses_in_network("unknown").unwrap();
        assert!(v4.is_empty() && v6.is_empty());
    }

    #[test]
    fn endpoints_need_their_network_and_container() {
        let mut store = populated();
        for (network, container) in [("n00000000001", "cffffffffff"), ("nffffffffff", "c00000000001")] {
            let err = store
                .insert_endpoint(&endpoint("e00000000001", network, container, None, None))
                .unwrap_err();
            // A missing row is not a clash of names or addresses.
            assert!(!err.is_constraint_violation(), "{err}");
        }
        assert!(store.endpoints().unwrap().is_empty());
    }

    #[test]
    fn endpoints_go_with_their_container_or_network() {
        let mut store = populated();
        for (id, net, c) in [
            ("e00000000001", "n00000000001", "c00000000001"),
            ("e00000000002", "n00000000001", "c00000000002"),
            ("e00000000003", "n00000000002", "c00000000001"),
            ("e00000000004", "n00000000002", "c00000000002"),
        ] {
            store.insert_endpoint(&endpoint(id, net, c, None, None)).unwrap();
        }
        assert!(store.delete_container("c00000000001").unwrap());
        let ids =
            |store: &Store| -> Vec<String> { store.endpoints().unwrap().into_iter().map(|e| e.id).collect() };
        assert_eq!(ids(&store), vec!["e00000000002", "e00000000004"]);
        store.delete_network("n00000000001").unwrap();
        assert_eq!(ids(&store), vec!["e00000000004"]);
        assert!(store.endpoints_of_network("n00000000001").unwrap().is_empty());
    }

    #[test]
    fn a_network_being_removed_takes_no_endpoints() {
        let mut store = populated();
        store
            .insert_endpoint(&endpoint(
                "e00000000001",
                "n00000000001",
                "c00000000001",
                None,
                None,
            ))
            .unwrap();
        // Prune marks only unused networks.
        assert!(!store.mark_network_removing("n00000000001", true).unwrap());
        assert!(store.mark_network_removing("n00000000002", true).unwrap());
        assert_eq!(store.networks_being_removed().unwrap(), vec!["n00000000002"]);
        let err = store
            .insert_endpoint(&endpoint(
                "e00000000002",
                "n00000000002",
                "c00000000002",
                None,
                None,
            ))
            .unwrap_err();
        assert!(matches!(err, StoreError::NetworkRemoving { .. }), "{err}");
        // rm marks a network in use too; its endpoints stay until detached.
        assert!(store.mark_network_removing("n00000000001", false).unwrap());
        assert_eq!(store.endpoints_of_network("n00000000001").unwrap().len(), 1);
        assert!(!store.mark_network_removing("nffffffffff", false).unwrap());
    }

    #[test]
    fn endpoints_being_detached_are_listed() {
        let mut store = populated();
        for (id, c) in [("e00000000001", "c00000000001"), ("e00000000002", "c00000000002")] {
            store
                .insert_endpoint(&endpoint(id, "n00000000001", c, None, None))
                .unwrap();
        }
        store.mark_endpoint_detaching("e00000000002").unwrap();
        assert_eq!(store.endpoints_being_detached().unwrap(), vec!["e00000000002"]);
    }

    #[test]
    fn origins_settings_and_nat_are_kept() {
        let mut store = Store::open_in_memory().unwrap();
        let public = bridge("0123456789ab", "public", "cellpub");
        let origin = NetworkOrigin {
            predefined: true,
            subnet_from_pool: true,
            subnet6_from_pool: false,
        };
        store.insert_network_with_origin(&public, origin).unwrap();
        store
            .insert_network(&bridge("ba9876543210", "mine", "cell0"))
            .unwrap();
        let origins = store.network_origins().unwrap();
        assert_eq!(origins["0123456789ab"], origin);
        assert_eq!(origins["ba9876543210"], NetworkOrigin::default());
        // A predefined network is never marked for removal, pruned or not;
        // the positive control: the other one is.
        assert!(!store.mark_network_removing("0123456789ab", false).unwrap());
        assert!(!store.mark_network_removing("0123456789ab", true).unwrap());
        assert!(store.mark_network_removing("ba9876543210", true).unwrap());
        store.set_network_nat("0123456789ab", None).unwrap();
        assert_eq!(store.network_by_name("public").unwrap().unwrap().nat, None);
        store.set_network_nat("0123456789ab", Some("em0")).unwrap();
        assert_eq!(
            store.network_by_name("public").unwrap().unwrap().nat.as_deref(),
            Some("em0")
        );
        assert_eq!(store.setting("pool6").unwrap(), None);
        assert_eq!(store.setting_or_insert("pool6", "a").unwrap(), "a");
        assert_eq!(store.setting_or_insert("pool6", "b").unwrap(), "a");
        // A failed insert (a taken name) records no origin either.
        assert!(store.insert_network_with_origin(&public, origin).is_err());
        assert_eq!(store.networks().unwrap().len(), 2);
    }
}
