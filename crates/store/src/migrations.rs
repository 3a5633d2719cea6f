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
    // 4: published ports, one row per host port, as the reservation the
    // kernel's forward and celld's bound socket follow. `host_ip` is ''
    // for every address. Two rows clash when port and protocol are equal
    // and the addresses are equal or either is '' (a wildcard covers every
    // address): the UNIQUE constraint covers the first case and the trigger
    // the second, so two containers can never hold one host port even if
    // the engine's checks had a bug. Ports recorded before this version
    // (then accepted and ignored) move here, oldest container first; a
    // later one that clashes with an earlier one is dropped, as it never
    // worked. The JSON column `containers.public_ports` is no longer read.
    "CREATE TABLE published_ports (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        host_ip TEXT NOT NULL,
        host_port INTEGER NOT NULL CHECK (host_port BETWEEN 1 AND 65535),
        container_port INTEGER NOT NULL CHECK (container_port BETWEEN 1 AND 65535),
        protocol TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),
        UNIQUE (host_port, protocol, host_ip)
    );
    CREATE INDEX published_ports_by_container ON published_ports(container_id);
    INSERT OR IGNORE INTO published_ports
        SELECT c.id, coalesce(json_extract(p.value, '$.host_ip'), ''),
               json_extract(p.value, '$.host_port'), json_extract(p.value, '$.container_port'),
               json_extract(p.value, '$.protocol')
        FROM containers c, json_each(c.public_ports) p
        WHERE json_extract(p.value, '$.host_port') BETWEEN 1 AND 65535
        ORDER BY c.created, p.key;
    DELETE FROM published_ports WHERE EXISTS (
        SELECT 1 FROM published_ports earlier
        WHERE earlier.rowid < published_ports.rowid
          AND earlier.host_port = published_ports.host_port
          AND earlier.protocol = published_ports.protocol
          AND (earlier.host_ip = '' OR published_ports.host_ip = ''));
    UPDATE containers SET public_ports = '[]';
    CREATE TRIGGER published_ports_wildcard_clash BEFORE INSERT ON published_ports
    WHEN EXISTS (
        SELECT 1 FROM published_ports
        WHERE host_port = NEW.host_port AND protocol = NEW.protocol
          AND (host_ip = '' OR NEW.host_ip = ''))
    BEGIN
        SELECT RAISE(ABORT, 'published port clashes with a published wildcard');
    END;",
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
            "DROP TABLE published_ports; DROP TABLE endpoints; DROP TABLE networks; PRAGMA user_version = 1;",
        )
        .unwrap();

        migrate(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version as usize, latest_version());
        assert_eq!(latest_version(), 4);
        let store = Store { conn };
        assert!(store.container_by_name("web").unwrap().is_some());
        assert_eq!(store.images().unwrap().len(), 1);
        assert!(store.networks().unwrap().is_empty());
    }

    /// Ports a version-3 cell recorded (and ignored) in the JSON column
    /// move to the table; one that clashes with an older container's is
    /// dropped, as it never worked.
    #[test]
    fn version_3_ports_move_to_the_table() {
        let old = Store::open_in_memory().unwrap();
        old.insert_image(&image()).unwrap();
        old.insert_container(&container("0123456789ab", "web")).unwrap();
        old.insert_container(&container("ba9876543210", "db")).unwrap();
        let mut conn = old.conn;
        conn.execute_batch(
            "DROP TABLE published_ports; PRAGMA user_version = 3;
             UPDATE containers SET created = '2026-01-01T00:00:00Z',
               public_ports = '[{\"host_ip\":null,\"host_port\":8080,\"container_port\":80,\"protocol\":\"tcp\"}]'
               WHERE id = '0123456789ab';
             UPDATE containers SET created = '2026-01-02T00:00:00Z',
               public_ports = '[{\"host_ip\":\"127.0.0.1\",\"host_port\":8080,\"container_port\":81,\"protocol\":\"tcp\"},
                                {\"host_ip\":\"127.0.0.1\",\"host_port\":8080,\"container_port\":81,\"protocol\":\"udp\"}]'
               WHERE id = 'ba9876543210';",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let store = Store { conn };
        let web = store.container("0123456789ab").unwrap().unwrap();
        assert_eq!(web.public_ports, vec!["8080:80".parse().unwrap()]);
        let db = store.container("ba9876543210").unwrap().unwrap();
        assert_eq!(db.public_ports, vec!["127.0.0.1:8080:81/udp".parse().unwrap()]);
    }
}
