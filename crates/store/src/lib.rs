//! cell-store: cell's persistent state in SQLite.
//!
//! The store records what cell intends: images, containers, their execution
//! instances, networks and the endpoints that attach containers to them (the
//! endpoints are also the address leases), and published ports ([`PublishedPort`],
//! whose rows are the host ports' reservations). It knows nothing of the kernel;
//! the engine makes the kernel match it. Each method is one
//! transaction, so a crash never leaves half a change. The schema is built
//! by numbered migrations ([`migrations`]) tracked with `PRAGMA user_version`.

mod containers;
pub use containers::ExecRecord;
mod error;
mod images;
pub mod migrations;
mod networks;
mod ports;
pub use networks::NetworkOrigin;
pub use ports::PublishedPort;

pub use error::StoreError;

use rusqlite::Connection;
use std::path::Path;

/// Results of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open store. Not `Sync`: the engine keeps it behind a mutex, and every
/// method is short.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::with_connection(conn)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Self> {
        Self::with_connection(Connection::open_in_memory()?)
    }

    fn with_connection(mut conn: Connection) -> Result<Self> {
        // WAL lets readers (inspect, ls) go on while a writer commits;
        // foreign keys make a dangling exec or endpoint impossible.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode, NORMAL syncs at checkpoints rather than at every
        // commit. A crash of celld loses nothing (the WAL is in the page
        // cache); a crash of the machine may lose the last commits but never
        // corrupts the database, and takes the kernel state those commits
        // describe (links, namespaces, processes) with it, which
        // reconciliation at the next start rebuilds from what was kept.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::migrate(&mut conn)?;
        Ok(Self { conn })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("model types serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp '{text}': {e}")))
}

fn format_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cell_core::model::{Container, Exec, Image, NetworkDriver};

    pub(crate) fn image() -> Image {
        Image {
            id: "aaaaaaaaaaaa".into(),
            name: "busybox".into(),
            source: "test".into(),
            cmd: vec!["/bin/sh".into()],
            created: chrono::Utc::now(),
        }
    }

    pub(crate) fn container(id: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            image_id: "aaaaaaaaaaaa".into(),
            cmd: vec!["true".into()],
            user: "root".into(),
            env: vec!["A=1".into()],
            network_driver: NetworkDriver::Disabled,
            stack: cell_core::model::Stack::Ipv4,
            dns: cell_core::model::Dns::Custom {
                resolv_conf: "nameserver 192.0.2.53\n".into(),
            },
            public_ports: vec![],
            params: vec!["allow.raw_sockets".into()],
            created: chrono::Utc::now(),
            running: false,
            pid: None,
            exit_code: None,
        }
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = std::env::temp_dir().join(format!("cell-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("cell.db");
        drop(Store::open(&db).unwrap());
        let store = Store::open(&db).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, migrations::latest_version());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn containers_round_trip_and_names_are_unique() {
        let store = Store::open_in_memory().unwrap();
        store.insert_image(&image()).unwrap();
        let c = container("0123456789ab", "web");
        store.insert_container(&c).unwrap();
        assert_eq!(
            store
                .container_by_name("web")
                .unwrap()
                .unwrap()
                .created
                .timestamp_micros(),
            c.created.timestamp_micros()
        );
        let mut back = store.container("0123456789ab").unwrap().unwrap();
        back.created = c.created;
        assert_eq!(back, c);
        let err = store
            .insert_container(&container("ba9876543210", "web"))
            .unwrap_err();
        assert!(err.is_constraint_violation(), "{err}");
        assert_eq!(
            store.container_ids_with_prefix("01").unwrap(),
            vec!["0123456789ab"]
        );
        assert!(store.container_ids_with_prefix("ff").unwrap().is_empty());
        // An image in use cannot be deleted.
        assert!(store.delete_image("aaaaaaaaaaaa").is_err());
        assert_eq!(store.containers_of_image("aaaaaaaaaaaa").unwrap(), vec!["web"]);
    }

    #[test]
    fn exits_are_recorded_once() {
        let mut store = Store::open_in_memory().unwrap();
        store.insert_image(&image()).unwrap();
        store.insert_container(&container("0123456789ab", "web")).unwrap();
        let init = ExecRecord {
            exec: Exec {
                id: "eeeeeeeeeeee".into(),
                container_id: "0123456789ab".into(),
                cmd: vec!["true".into()],
                is_init: true,
                created: chrono::Utc::now(),
                exit_code: None,
            },
            shim_pid: Some(10),
            pid: Some(11),
        };
        store.insert_exec(&init).unwrap();
        store.set_container_running("0123456789ab", &init).unwrap();
        assert_eq!(store.running_execs().unwrap().len(), 1);
        // Timestamps are stored to the microsecond, so compare what identifies it.
        let found = store
            .running_init_exec("0123456789ab")
            .unwrap()
            .expect("running init");
        assert_eq!(
            (found.exec.id.as_str(), found.shim_pid, found.pid),
            ("eeeeeeeeeeee", Some(10), Some(11))
        );
        assert!(
            store
                .set_container_stopped("0123456789ab", "eeeeeeeeeeee", 3)
                .unwrap()
        );
        assert!(
            !store
                .set_container_stopped("0123456789ab", "eeeeeeeeeeee", 4)
                .unwrap()
        );
        let c = store.container("0123456789ab").unwrap().unwrap();
        assert_eq!((c.running, c.pid, c.exit_code), (false, None, Some(3)));
        assert!(store.running_execs().unwrap().is_empty());
        assert_eq!(store.running_init_exec("0123456789ab").unwrap(), None);
        assert_eq!(
            store.exec("eeeeeeeeeeee").unwrap().unwrap().exec.exit_code,
            Some(3)
        );
        // Removing the container removes its execs.
        assert!(store.delete_container("0123456789ab").unwrap());
        assert!(store.exec("eeeeeeeeeeee").unwrap().is_none());
    }
}
