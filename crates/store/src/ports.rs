//! Published-port rows (migration 4): one per host port a container holds.
//!
//! The table is the reservation: its UNIQUE constraint and its trigger
//! refuse a second row on a host port and protocol that another row holds
//! on the same address or on all addresses, whichever container asks
//! ([`crate::StoreError::is_constraint_violation`] is true then). The
//! engine checks first, to name the holder; the table backs it up.

use crate::{Result, Store, StoreError};
use cell_core::port::PortSpec;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::net::IpAddr;

const COLUMNS: &str = "container_id, host_ip, host_port, container_port, protocol";

/// A published port and the container that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// The container's id.
    pub container_id: String,
    /// The mapping.
    pub port: PortSpec,
}

fn host_ip_text(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_default()
}

type RawRow = (String, String, u16, u16, String);

fn raw_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn from_raw((container_id, host_ip, host_port, container_port, protocol): RawRow) -> Result<PublishedPort> {
    let corrupt =
        |what: &str, value: &str| StoreError::Corrupt(format!("published port: bad {what} '{value}'"));
    let host_ip = match host_ip.as_str() {
        "" => None,
        text => Some(text.parse().map_err(|_| corrupt("host address", text))?),
    };
    Ok(PublishedPort {
        container_id,
        port: PortSpec {
            host_ip,
            host_port,
            container_port,
            protocol: protocol.parse().map_err(|_| corrupt("protocol", &protocol))?,
        },
    })
}

/// Inserts `ports` of a container; the caller's transaction makes them one
/// change.
pub(crate) fn insert_ports(conn: &Connection, container_id: &str, ports: &[PortSpec]) -> Result<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO published_ports ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
    ))?;
    execute_per_port(&mut stmt, container_id, ports)
}

/// Runs `stmt` once per port, bound as (container, host address, host
/// port, container port, protocol): the columns' order in inserts and in
/// deletes alike.
fn execute_per_port(
    stmt: &mut rusqlite::CachedStatement<'_>,
    container_id: &str,
    ports: &[PortSpec],
) -> Result<()> {
    for p in ports {
        stmt.execute(params![
            container_id,
            host_ip_text(p.host_ip),
            p.host_port,
            p.container_port,
            p.protocol.as_str()
        ])?;
    }
    Ok(())
}

/// The ports of one container, in the order they were published.
pub(crate) fn ports_of(conn: &Connection, container_id: &str) -> Result<Vec<PortSpec>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM published_ports WHERE container_id = ?1 ORDER BY rowid"
    ))?;
    let rows = stmt
        .query_map([container_id], raw_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|r| from_raw(r).map(|p| p.port)).collect()
}

/// Every container's ports, by container id.
pub(crate) fn ports_by_container(conn: &Connection) -> Result<HashMap<String, Vec<PortSpec>>> {
    let mut map: HashMap<String, Vec<PortSpec>> = HashMap::new();
    for p in published_ports(conn)? {
        map.entry(p.container_id).or_default().push(p.port);
    }
    Ok(map)
}

fn published_ports(conn: &Connection) -> Result<Vec<PublishedPort>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM published_ports ORDER BY rowid"))?;
    let rows = stmt
        .query_map([], raw_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(from_raw).collect()
}

impl Store {
    /// Every published port of every container, oldest first.
    pub fn published_ports(&self) -> Result<Vec<PublishedPort>> {
        published_ports(&self.conn)
    }

    /// The published ports of a container, oldest first.
    pub fn ports_of_container(&self, container_id: &str) -> Result<Vec<PortSpec>> {
        ports_of(&self.conn, container_id)
    }

    /// Publishes `ports` for a container, all or none. Fails with a
    /// constraint violation if one clashes with a port already published
    /// (by any container, this one included).
    pub fn add_published_ports(&mut self, container_id: &str, ports: &[PortSpec]) -> Result<()> {
        let tx = self.conn.transaction()?;
        insert_ports(&tx, container_id, ports)?;
        tx.commit()?;
        Ok(())
    }

    /// Unpublishes `ports` of a container, all in one transaction; ports it
    /// does not hold are ignored.
    pub fn remove_published_ports(&mut self, container_id: &str, ports: &[PortSpec]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM published_ports WHERE container_id = ?1 AND host_ip = ?2
                 AND host_port = ?3 AND container_port = ?4 AND protocol = ?5",
            )?;
            execute_per_port(&mut stmt, container_id, ports)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::tests::{container, image};
    use cell_core::port::PortSpec;

    fn p(spec: &str) -> PortSpec {
        spec.parse().unwrap()
    }

    #[test]
    fn a_host_port_is_held_once_whatever_the_address() {
        let mut store = Store::open_in_memory().unwrap();
        store.insert_image(&image()).unwrap();
        let mut web = container("0123456789ab", "web");
        web.public_ports = vec![p("8080:80"), p("127.0.0.1:9090:90/udp")];
        store.insert_container(&web).unwrap();
        store.insert_container(&container("ba9876543210", "db")).unwrap();
        let db = "ba9876543210";
        // The wildcard 8080/tcp covers every address; 9090/udp only 127.0.0.1.
        for clash in [
            "127.0.0.1:8080:1",
            "[::1]:8080:1",
            "8080:1",
            "9090:1/udp",
            "127.0.0.1:9090:2/udp",
        ] {
            let err = store.add_published_ports(db, &[p(clash)]).unwrap_err();
            assert!(err.is_constraint_violation(), "{clash}: {err}");
        }
        // A batch with one clash adds nothing.
        assert!(
            store
                .add_published_ports(db, &[p("7070:70"), p("8080:80")])
                .is_err()
        );
        assert!(store.ports_of_container(db).unwrap().is_empty());
        store
            .add_published_ports(db, &[p("8080:80/udp"), p("127.0.0.2:9090:90/udp"), p("7070:70")])
            .unwrap();
        assert_eq!(store.container(db).unwrap().unwrap().public_ports.len(), 3);
        assert_eq!(
            store.container("0123456789ab").unwrap().unwrap().public_ports,
            web.public_ports
        );
        store
            .remove_published_ports(db, &[p("7070:70"), p("1:1")])
            .unwrap();
        assert_eq!(store.ports_of_container(db).unwrap().len(), 2);
        assert_eq!(store.published_ports().unwrap().len(), 4);
        // Removing a container frees its ports.
        store.delete_container("0123456789ab").unwrap();
        store.add_published_ports(db, &[p("8080:80")]).unwrap();
    }
}
