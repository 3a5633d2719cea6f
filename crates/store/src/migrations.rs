//! Numbered schema migrations, applied in order and tracked with
//! `PRAGMA user_version`, so an old database is brought up to date at start.

use crate::Result;
use rusqlite::Connection;

/// The migrations; index `i` brings the schema from version `i` to `i + 1`.
/// Never edit one that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: images, containers and their execution instances.
    "CREATE TABLE images (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        cmd TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL REFERENCES images(id),
        cmd TEXT NOT NULL,
        user TEXT NOT NULL,
        env TEXT NOT NULL,
        driver TEXT NOT NULL,
        public_ports TEXT NOT NULL,
        params TEXT NOT NULL,
        created TEXT NOT NULL,
        running INTEGER NOT NULL DEFAULT 0,
        pid INTEGER,
        exit_code INTEGER
    );
    CREATE TABLE execs (
        id TEXT PRIMARY KEY,
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        cmd TEXT NOT NULL,
        is_init INTEGER NOT NULL,
        created TEXT NOT NULL,
        shim_pid INTEGER,
        pid INTEGER,
        exit_code INTEGER
    );
    CREATE INDEX execs_by_container ON execs(container_id);",
    // 2: networks and the endpoints that attach containers to them. The
    // UNIQUE address constraints are the leases: even if the engine's IPAM
    // had a bug, two endpoints could never hold one address in a network.
    // SQLite lets a UNIQUE column hold many NULLs, so endpoints without an
    // address (no IPv6, say) never clash.
    "CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        interface TEXT NOT NULL UNIQUE,
        subnet TEXT,
        subnet6 TEXT,
        gateway TEXT,
        gateway6 TEXT,
        nat TEXT,
        icc INTEGER NOT NULL,
        internal INTEGER NOT NULL,
        antispoof INTEGER NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE endpoints (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        epair TEXT,
        ip_address TEXT,
        ip_address6 TEXT,
        mac TEXT,
        UNIQUE (network_id, container_id),
        UNIQUE (network_id, ip_address),
        UNIQUE (network_id, ip_address6)
    );
    CREATE INDEX endpoints_by_container ON endpoints(container_id);",
    // 3: intent recorded before the kernel is touched, so a crash half-way
    // through a removal is finished by reconciliation at the next start: a
    // network being removed takes no new endpoints, an endpoint being
    // detached is gone for good.
    "ALTER TABLE networks ADD COLUMN removing INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE endpoints ADD COLUMN detaching INTEGER NOT NULL DEFAULT 0;",
    // 6 (in the numbering of issues 8 and 9: 4 is published ports, 5 stacks
    // and DNS modes): address pools and the `public` network. Where a
    // network's blocks came from (a network with a subnet of its own may
    // not overlap the pool, which is checked at every start), whether
    // celld made it itself (`public`: never removed, its bridge made at
    // its first join), and settings celld draws once and keeps (the
    // pool6's random global id, RFC 4193).
    "ALTER TABLE networks ADD COLUMN predefined INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE networks ADD COLUMN subnet_from_pool INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE networks ADD COLUMN subnet6_from_pool INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
];

/// Brings the schema up to the latest version, in one transaction.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction()?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// The schema version the code expects.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::tests::{container, image};

    /// A database left by a cell that knew only migration 1 keeps its rows
    /// and gains the network tables.
    #[test]
    fn version_1_database_is_upgraded() {
        let old = Store::open_in_memory().unwrap();
        old.insert_image(&image()).unwrap();
        old.insert_container(&container("0123456789ab", "web")).unwrap();
        // Rewind the schema to version 1, as an older cell left it.
        let mut conn = old.conn;
        conn.execute_batch(
            "DROP TABLE endpoints; DROP TABLE networks; DROP TABLE settings; PRAGMA user_version = 1;",
        )
        .unwrap();

        migrate(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version as usize, latest_version());
        assert_eq!(latest_version(), MIGRATIONS.len());
        let store = Store { conn };
        assert!(store.container_by_name("web").unwrap().is_some());
        assert_eq!(store.images().unwrap().len(), 1);
        assert!(store.networks().unwrap().is_empty());
    }
}
