//! Container and execution-instance rows.

use crate::{Result, Store, format_time, from_json, parse_time, to_json};
use cell_core::model::{Container, Exec};
use rusqlite::{OptionalExtension, Row, params};

const COLUMNS: &str =
    "id, name, image_id, cmd, user, env, driver, public_ports, params, created, running, pid, exit_code";

/// The raw columns of a container row, parsed outside the rusqlite closure so
/// that a corrupt JSON column is a [`crate::StoreError::Corrupt`], not a panic.
struct ContainerRow {
    id: String,
    name: String,
    image_id: String,
    cmd: String,
    user: String,
    env: String,
    driver: String,
    params: String,
    created: String,
    running: bool,
    pid: Option<i32>,
    exit_code: Option<i32>,
}

fn container_row(row: &Row<'_>) -> rusqlite::Result<ContainerRow> {
    Ok(ContainerRow {
        id: row.get(0)?,
        name: row.get(1)?,
        image_id: row.get(2)?,
        cmd: row.get(3)?,
        user: row.get(4)?,
        env: row.get(5)?,
        driver: row.get(6)?,
        // Column 7, public_ports, is superseded by the published_ports table.
        params: row.get(8)?,
        created: row.get(9)?,
        running: row.get(10)?,
        pid: row.get(11)?,
        exit_code: row.get(12)?,
    })
}

impl ContainerRow {
    fn into_container(self) -> Result<Container> {
        Ok(Container {
            network_driver: self
                .driver
                .parse()
                .map_err(|e: cell_core::CoreError| crate::StoreError::Corrupt(e.message))?,
            cmd: from_json("cmd", &self.cmd)?,
            env: from_json("env", &self.env)?,
            // Filled from the published_ports table by the caller (the
            // JSON column is no longer written: migration 4).
            public_ports: Vec::new(),
            params: from_json("params", &self.params)?,
            created: parse_time(&self.created)?,
            id: self.id,
            name: self.name,
            image_id: self.image_id,
            user: self.user,
            running: self.running,
            pid: self.pid,
            exit_code: self.exit_code,
        })
    }
}

/// An execution instance with what the engine needs to find its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    /// The model part.
    pub exec: Exec,
    /// The pid of its supervisor while it runs.
    pub shim_pid: Option<i32>,
    /// The host pid of its process while it runs.
    pub pid: Option<i32>,
}

fn exec_row(row: &Row<'_>) -> rusqlite::Result<(ExecRecord, String, String)> {
    Ok((
        ExecRecord {
            exec: Exec {
                id: row.get(0)?,
                container_id: row.get(1)?,
                cmd: Vec::new(),
                is_init: row.get(3)?,
                created: chrono::DateTime::UNIX_EPOCH,
                exit_code: row.get(7)?,
            },
            shim_pid: row.get(5)?,
            pid: row.get(6)?,
        },
        row.get(2)?,
        row.get(4)?,
    ))
}

fn exec_from_row((mut record, cmd, created): (ExecRecord, String, String)) -> Result<ExecRecord> {
    record.exec.cmd = from_json("cmd", &cmd)?;
    record.exec.created = parse_time(&created)?;
    Ok(record)
}

const EXEC_COLUMNS: &str = "id, container_id, cmd, is_init, created, shim_pid, pid, exit_code";

impl Store {
    /// Records a new container with its published ports, in one
    /// transaction. Fails with a constraint violation if the name is taken
    /// or a port clashes with one already published.
    pub fn insert_container(&self, c: &Container) -> Result<()> {
        // Unchecked: `&self` callers never hold another transaction open.
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            params![
                c.id,
                c.name,
                c.image_id,
                to_json(&c.cmd),
                c.user,
                to_json(&c.env),
                c.network_driver.as_str(),
                // Superseded by the published_ports table (migration 4).
                "[]",
                to_json(&c.params),
                format_time(&c.created),
                c.running,
                c.pid,
                c.exit_code
            ],
        )?;
        crate::ports::insert_ports(&tx, &c.id, &c.public_ports)?;
        tx.commit()?;
        Ok(())
    }

    /// The container with this id.
    pub fn container(&self, id: &str) -> Result<Option<Container>> {
        self.query_container("id = ?1", id)
    }

    /// The container with this name.
    pub fn container_by_name(&self, name: &str) -> Result<Option<Container>> {
        self.query_container("name = ?1", name)
    }

    fn query_container(&self, condition: &str, value: &str) -> Result<Option<Container>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE {condition}"),
                [value],
                container_row,
            )
            .optional()?;
        let Some(mut container) = row.map(ContainerRow::into_container).transpose()? else {
            return Ok(None);
        };
        container.public_ports = crate::ports::ports_of(&self.conn, &container.id)?;
        Ok(Some(container))
    }

    /// Ids of the containers whose id starts with `prefix`.
    pub fn container_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM containers WHERE substr(id, 1, length(?1)) = ?1")?;
        Ok(stmt
            .query_map([prefix], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// All containers, newest first.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM containers ORDER BY created DESC"))?;
        let rows = stmt
            .query_map([], container_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut ports = crate::ports::ports_by_container(&self.conn)?;
        rows.into_iter()
            .map(|row| {
                let mut container = row.into_container()?;
                container.public_ports = ports.remove(&container.id).unwrap_or_default();
                Ok(container)
            })
            .collect()
    }

    /// Records that the container's init runs: its exec (recorded before
    /// its supervisor was spawned) gets its pids, the container its pid.
    pub fn set_container_running(&mut self, id: &str, init: &ExecRecord) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE containers SET running = 1, pid = ?2, exit_code = NULL WHERE id = ?1",
            params![id, init.pid],
        )?;
        set_exec_started(&tx, init)?;
        tx.commit()?;
        Ok(())
    }

    /// Records that the container's init exited with `exit_code`, and its
    /// exec with it. Returns false if it was already recorded (the watcher
    /// and a `stop` may both report the same exit).
    pub fn set_container_stopped(&mut self, id: &str, init_exec: &str, exit_code: i32) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            // Only while this init is the container's live one: a late
            // report of a previous run's exit must not stop the next run.
            "UPDATE containers SET running = 0, pid = NULL, exit_code = ?2
             WHERE id = ?1 AND running = 1 AND EXISTS (
                 SELECT 1 FROM execs WHERE id = ?3 AND container_id = ?1 AND exit_code IS NULL)",
            params![id, exit_code, init_exec],
        )? > 0;
        set_exec_exited(&tx, init_exec, exit_code)?;
        tx.commit()?;
        Ok(changed)
    }

    /// Forgets a container and its execs.
    pub fn delete_container(&self, id: &str) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM containers WHERE id = ?1", [id])? > 0)
    }

    /// Records a new exec; before its supervisor is spawned, without pids,
    /// so that a supervisor started just before a crash is found again.
    pub fn insert_exec(&self, record: &ExecRecord) -> Result<()> {
        insert_exec(&self.conn, record)
    }

    /// Records the pids of an exec whose supervisor has started.
    pub fn set_exec_started(&self, record: &ExecRecord) -> Result<()> {
        set_exec_started(&self.conn, record)
    }

    /// Forgets an exec whose supervisor could not be started.
    pub fn delete_exec(&self, id: &str) -> Result<()> {
        self.conn.execute("DELETE FROM execs WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The exec with this id.
    pub fn exec(&self, id: &str) -> Result<Option<ExecRecord>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {EXEC_COLUMNS} FROM execs WHERE id = ?1"),
                [id],
                exec_row,
            )
            .optional()?;
        row.map(exec_from_row).transpose()
    }

    /// The execs that have not been seen to exit.
    pub fn running_execs(&self) -> Result<Vec<ExecRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {EXEC_COLUMNS} FROM execs WHERE exit_code IS NULL ORDER BY created"
        ))?;
        let rows = stmt
            .query_map([], exec_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(exec_from_row).collect()
    }

    /// The container's init exec, if it has not been seen to exit.
    pub fn running_init_exec(&self, container_id: &str) -> Result<Option<ExecRecord>> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {EXEC_COLUMNS} FROM execs WHERE container_id = ?1 AND is_init = 1 AND exit_code IS NULL"
                ),
                [container_id],
                exec_row,
            )
            .optional()?;
        row.map(exec_from_row).transpose()
    }

    /// Records an exec's exit code; false if it was already recorded.
    pub fn set_exec_exited(&self, id: &str, exit_code: i32) -> Result<bool> {
        set_exec_exited(&self.conn, id, exit_code)
    }

    /// Ids of the container's execs, for removing their state.
    pub fn exec_ids_of_container(&self, container_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM execs WHERE container_id = ?1")?;
        Ok(stmt
            .query_map([container_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }
}

fn insert_exec(conn: &rusqlite::Connection, r: &ExecRecord) -> Result<()> {
    conn.execute(
        &format!("INSERT INTO execs ({EXEC_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            r.exec.id,
            r.exec.container_id,
            to_json(&r.exec.cmd),
            r.exec.is_init,
            format_time(&r.exec.created),
            r.shim_pid,
            r.pid,
            r.exec.exit_code
        ],
    )?;
    Ok(())
}

fn set_exec_started(conn: &rusqlite::Connection, r: &ExecRecord) -> Result<()> {
    conn.execute(
        "UPDATE execs SET shim_pid = ?2, pid = ?3 WHERE id = ?1 AND exit_code IS NULL",
        params![r.exec.id, r.shim_pid, r.pid],
    )?;
    Ok(())
}

fn set_exec_exited(conn: &rusqlite::Connection, id: &str, exit_code: i32) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE execs SET exit_code = ?2, shim_pid = NULL, pid = NULL WHERE id = ?1 AND exit_code IS NULL",
        params![id, exit_code],
    )? > 0)
}
