//! [`State`]: the plugin's leases and network records, in SQLite under the
//! data directory (`dataDir`, default `/var/lib/cni/cell`), so they
//! survive the plugin's process (it runs once per call) and the machine.
//!
//! A lease is keyed by `(network, container id, ifname)`, the attachment
//! of the spec, and its addresses are unique per network (a constraint of
//! the table, as in `celld`'s store). A network record keeps the network
//! as it was set up (with the NAT interface found then) and whether the
//! plugin made its bridge, so the last DEL removes exactly what the first
//! ADD made, even if the configuration or the default route changed.
//!
//! Every operation that changes the kernel holds an exclusive `flock` on
//! `DIR/lock` from before it reads the leases until it has written them:
//! parallel ADDs, DELs and GCs of any network take turns, so two never
//! get one address, and the first ADD and the last DEL of a network never
//! race over its bridge. The lock goes with the process, even a killed one.

use crate::error::{CniError, Code, Result};
use cell_core::ipam;
use cell_core::model::Network;
use cell_core::port::PortSpec;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// One attachment's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The network's name.
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The attachment's id (`crate::config::endpoint_id`).
    pub endpoint_id: String,
    /// IPv4 address, if the network has an IPv4 subnet.
    pub ip4: Option<Ipv4Addr>,
    /// IPv6 address, if the network has an IPv6 subnet.
    pub ip6: Option<Ipv6Addr>,
    /// The ports forwarded to it, so DEL and GC remove their elements
    /// whatever the runtime passes them.
    pub ports: Vec<PortSpec>,
}

/// A network as its first ADD set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    /// The network, NAT interface resolved.
    pub network: Network,
    /// Whether the plugin made the bridge (and so removes it).
    pub owns_interface: bool,
}

/// The open state, locked for as long as it lives.
#[derive(Debug)]
pub struct State {
    conn: Connection,
    dir: PathBuf,
    _lock: File,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    owns_interface INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    network TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ifname TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    ip4 TEXT,
    ip6 TEXT,
    ports TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (network, container_id, ifname),
    UNIQUE (network, ip4),
    UNIQUE (network, ip6)
);
";

fn io(what: String, cause: &dyn std::error::Error) -> CniError {
    CniError::caused(Code::Io, format!("{what}: {cause}"), cause)
}

impl State {
    /// Opens (creating) the state in `dir` and takes its lock, waiting
    /// for another call to finish if one holds it.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            io(
                format!("failed to create the data directory {}", dir.display()),
                &e,
            )
        })?;
        let lock_path = dir.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(format!("failed to open {}", lock_path.display()), &e))?;
        // SAFETY: flock on an fd we own for the whole call; it blocks until
        // the lock is ours and has no other effect.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(io(format!("failed to lock {}", lock_path.display()), &e));
        }
        let db = dir.join("leases.db");
        let db_err = |e: rusqlite::Error| io(format!("failed to open the leases in {}", db.display()), &e);
        let conn = Connection::open(&db).map_err(db_err)?;
        // WAL with synchronous=NORMAL: a commit costs no fsync of the
        // database; a machine crash may lose the last leases, together
        // with the kernel state (veths, elements) they describe.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=60000;")
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Self {
            conn,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    fn db_error(&self, what: &str, e: rusqlite::Error) -> CniError {
        io(format!("failed to {what} in {}", self.dir.display()), &e)
    }

    /// The lease of an attachment, if it has one.
    pub fn lease(&self, network: &str, container_id: &str, ifname: &str) -> Result<Option<Lease>> {
        self.conn
            .query_row(
                "SELECT network, container_id, ifname, endpoint_id, ip4, ip6, ports FROM leases
                 WHERE network = ?1 AND container_id = ?2 AND ifname = ?3",
                params![network, container_id, ifname],
                lease_from_row,
            )
            .optional()
            .map_err(|e| self.db_error("read a lease", e))
    }

    /// Every lease of `network`.
    pub fn leases(&self, network: &str) -> Result<Vec<Lease>> {
        let err = |e| self.db_error("read the leases", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT network, container_id, ifname, endpoint_id, ip4, ip6, ports FROM leases
                 WHERE network = ?1 ORDER BY container_id, ifname",
            )
            .map_err(err)?;
        let rows = stmt.query_map(params![network], lease_from_row).map_err(err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(err)
    }

    /// Every lease of every network.
    pub fn all_leases(&self) -> Result<Vec<Lease>> {
        let err = |e| self.db_error("read the leases", e);
        let mut stmt = self
            .conn
            .prepare("SELECT network, container_id, ifname, endpoint_id, ip4, ip6, ports FROM leases")
            .map_err(err)?;
        let rows = stmt.query_map([], lease_from_row).map_err(err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(err)
    }

    /// The endpoint ids of every lease of every network.
    pub fn all_endpoint_ids(&self) -> Result<HashSet<String>> {
        let err = |e| self.db_error("read the leases", e);
        let mut stmt = self.conn.prepare("SELECT endpoint_id FROM leases").map_err(err)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
        rows.collect::<rusqlite::Result<HashSet<_>>>().map_err(err)
    }

    /// The attachment's lease: the one it has, or a new one with free
    /// addresses of `net` (`requested` ones if given and free); either way
    /// with `ports`.
    pub fn allocate(
        &self,
        net: &Network,
        container_id: &str,
        ifname: &str,
        endpoint_id: &str,
        requested: (Option<Ipv4Addr>, Option<Ipv6Addr>),
        ports: &[PortSpec],
    ) -> Result<Lease> {
        let ports_json = serde_json::to_string(ports).expect("port specs serialise");
        if let Some(mut lease) = self.lease(&net.name, container_id, ifname)? {
            self.conn
                .execute(
                    "UPDATE leases SET ports = ?4 WHERE network = ?1 AND container_id = ?2 AND ifname = ?3",
                    params![net.name, container_id, ifname, ports_json],
                )
                .map_err(|e| self.db_error("record a lease's ports", e))?;
            lease.ports = ports.to_vec();
            return Ok(lease);
        }
        let leases = self.leases(&net.name)?;
        let used4: HashSet<Ipv4Addr> = leases.iter().filter_map(|l| l.ip4).collect();
        let used6: HashSet<Ipv6Addr> = leases.iter().filter_map(|l| l.ip6).collect();
        let refuse = |conflict: Code| {
            move |e: cell_core::CoreError| {
                let code = match e.kind {
                    cell_core::ErrorKind::Conflict => conflict,
                    _ => Code::InvalidConfig,
                };
                CniError::new(code, e.message)
            }
        };
        let ip4 = match (net.subnet, requested.0) {
            (None, _) => None,
            (Some(_), Some(ip)) => {
                ipam::check_requested_v4(net, ip, &used4).map_err(refuse(Code::AddressInUse))?;
                Some(ip)
            }
            (Some(_), None) => {
                Some(ipam::allocate_v4(net, &used4).map_err(refuse(Code::AddressesExhausted))?)
            }
        };
        let ip6 = match (net.subnet6, requested.1) {
            (None, _) => None,
            (Some(_), Some(ip)) => {
                ipam::check_requested_v6(net, ip, &used6).map_err(refuse(Code::AddressInUse))?;
                Some(ip)
            }
            (Some(_), None) => {
                Some(ipam::allocate_v6(net, &used6).map_err(refuse(Code::AddressesExhausted))?)
            }
        };
        let lease = Lease {
            network: net.name.clone(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            endpoint_id: endpoint_id.into(),
            ip4,
            ip6,
            ports: ports.to_vec(),
        };
        self.conn
            .execute(
                "INSERT INTO leases (network, container_id, ifname, endpoint_id, ip4, ip6, ports)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    lease.network,
                    lease.container_id,
                    lease.ifname,
                    lease.endpoint_id,
                    lease.ip4.map(|a| a.to_string()),
                    lease.ip6.map(|a| a.to_string()),
                    ports_json,
                ],
            )
            .map_err(|e| self.db_error("record a lease", e))?;
        Ok(lease)
    }

    /// Releases an attachment's lease; done if it has none.
    pub fn release(&self, network: &str, container_id: &str, ifname: &str) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM leases WHERE network = ?1 AND container_id = ?2 AND ifname = ?3",
                params![network, container_id, ifname],
            )
            .map(drop)
            .map_err(|e| self.db_error("release a lease", e))
    }

    /// The record of a network that is set up.
    pub fn network(&self, name: &str) -> Result<Option<NetworkRecord>> {
        let row = self
            .conn
            .query_row(
                "SELECT spec, owns_interface FROM networks WHERE name = ?1",
                params![name],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)),
            )
            .optional()
            .map_err(|e| self.db_error("read a network", e))?;
        row.map(|(spec, owns_interface)| {
            let network = serde_json::from_str(&spec)
                .map_err(|e| io(format!("failed to read the record of network '{name}'"), &e))?;
            Ok(NetworkRecord {
                network,
                owns_interface,
            })
        })
        .transpose()
    }

    /// Records a network as set up.
    pub fn record_network(&self, record: &NetworkRecord) -> Result<()> {
        let spec = serde_json::to_string(&record.network).expect("a network serialises");
        self.conn
            .execute(
                "INSERT OR REPLACE INTO networks (name, spec, owns_interface) VALUES (?1, ?2, ?3)",
                params![record.network.name, spec, record.owns_interface],
            )
            .map(drop)
            .map_err(|e| self.db_error("record a network", e))
    }

    /// Forgets a network that is torn down.
    pub fn forget_network(&self, name: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM networks WHERE name = ?1", params![name])
            .map(drop)
            .map_err(|e| self.db_error("forget a network", e))
    }
}

fn lease_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    let ip = |i: usize| -> rusqlite::Result<Option<String>> { row.get(i) };
    Ok(Lease {
        network: row.get(0)?,
        container_id: row.get(1)?,
        ifname: row.get(2)?,
        endpoint_id: row.get(3)?,
        ip4: ip(4)?.and_then(|a| a.parse().ok()),
        ip6: ip(5)?.and_then(|a| a.parse().ok()),
        ports: serde_json::from_str(&row.get::<_, String>(6)?).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetConf;
    use serde_json::json;

    fn network() -> Network {
        NetConf::parse(&json!({"cniVersion": "1.1.0", "name": "pods",
            "subnet": "10.7.0.0/29", "subnet6": "fd00:7::/120"}))
        .unwrap()
        .network("eth0", None)
    }

    #[test]
    fn leases_are_kept_per_attachment_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let net = network();
        let state = State::open(dir.path()).unwrap();
        let a = state
            .allocate(&net, "c1", "eth0", "e1", (None, None), &[])
            .unwrap();
        assert_eq!(a.ip4, Some("10.7.0.2".parse().unwrap()));
        assert_eq!(a.ip6, Some("fd00:7::2".parse().unwrap()));
        let b = state
            .allocate(&net, "c1", "eth1", "e2", (None, None), &[])
            .unwrap();
        assert_eq!(b.ip4, Some("10.7.0.3".parse().unwrap()));
        // The same attachment keeps its lease.
        assert_eq!(
            state
                .allocate(&net, "c1", "eth0", "e1", (None, None), &[])
                .unwrap(),
            a
        );
        drop(state);
        let state = State::open(dir.path()).unwrap();
        assert_eq!(state.lease("pods", "c1", "eth0").unwrap(), Some(a.clone()));
        assert_eq!(state.leases("pods").unwrap().len(), 2);
        state.release("pods", "c1", "eth0").unwrap();
        state.release("pods", "c1", "eth0").unwrap();
        assert_eq!(state.lease("pods", "c1", "eth0").unwrap(), None);
        // A released address is handed out again.
        let c = state
            .allocate(&net, "c2", "eth0", "e3", (None, None), &[])
            .unwrap();
        assert_eq!(c.ip4, a.ip4);
        assert_eq!(
            state.all_endpoint_ids().unwrap(),
            HashSet::from(["e2".to_string(), "e3".to_string()])
        );
    }

    #[test]
    fn an_exhausted_subnet_and_a_taken_address_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let net = network();
        let state = State::open(dir.path()).unwrap();
        // A /29 has six hosts; the gateway takes one.
        for i in 0..5 {
            state
                .allocate(
                    &net,
                    &format!("c{i}"),
                    "eth0",
                    &format!("e{i}"),
                    (None, None),
                    &[],
                )
                .unwrap();
        }
        let err = state
            .allocate(&net, "c9", "eth0", "e9", (None, None), &[])
            .unwrap_err();
        assert_eq!(err.code, Code::AddressesExhausted, "{}", err.msg);
        state.release("pods", "c0", "eth0").unwrap();
        let taken = Some("10.7.0.3".parse().unwrap());
        let err = state
            .allocate(&net, "c9", "eth0", "e9", (taken, None), &[])
            .unwrap_err();
        assert!(err.msg.contains("10.7.0.3"), "{}", err.msg);
        assert_eq!(err.code, Code::AddressInUse);
        let free = Some("10.7.0.2".parse().unwrap());
        assert_eq!(
            state
                .allocate(&net, "c9", "eth0", "e9", (free, None), &[])
                .unwrap()
                .ip4,
            free
        );
    }

    #[test]
    fn parallel_allocations_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let net = NetConf::parse(&json!({"cniVersion": "1.1.0", "name": "pods", "subnet": "10.8.0.0/24"}))
            .unwrap()
            .network("eth0", None);
        let threads: Vec<_> = (0..20)
            .map(|i| {
                let (dir, net) = (dir.path().to_path_buf(), net.clone());
                std::thread::spawn(move || {
                    let state = State::open(&dir).unwrap();
                    state
                        .allocate(
                            &net,
                            &format!("c{i}"),
                            "eth0",
                            &format!("e{i}"),
                            (None, None),
                            &[],
                        )
                        .unwrap()
                        .ip4
                })
            })
            .collect();
        let addrs: HashSet<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(addrs.len(), 20);
    }

    #[test]
    fn network_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let record = NetworkRecord {
            network: network(),
            owns_interface: true,
        };
        assert_eq!(state.network("pods").unwrap(), None);
        state.record_network(&record).unwrap();
        assert_eq!(state.network("pods").unwrap(), Some(record));
        state.forget_network("pods").unwrap();
        assert_eq!(state.network("pods").unwrap(), None);
    }
}
