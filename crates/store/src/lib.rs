//! cell-store: cell's persistent state in SQLite.
//!
//! The store records what cell intends: images, containers, their execution
//! instances (and, later, networks and address leases). It knows nothing of
//! the kernel; the engine makes the kernel match it. Each method is one
//! transaction, so a crash never leaves half a change. The schema is built
//! by numbered migrations ([`migrations`]) tracked with `PRAGMA user_version`.

mod containers;
pub use containers::ExecRecord;
mod error;
mod images;
pub mod migrations;

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
