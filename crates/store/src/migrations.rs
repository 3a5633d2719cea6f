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
