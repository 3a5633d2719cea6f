//! cell-engine: cell's use cases, and the repair of kernel state at start.
//!
//! [`Engine`] is what `celld` serves: images ([`images`]), containers and
//! their execution instances ([`containers`], [`execs`]), networks and the
//! endpoints that attach containers to them ([`networks`]). Every use case
//! checks its input first, records intent in the store, then acts on the
//! system through the runtime and net layers, undoing what it did if a later
//! step fails. The functions are blocking; the daemon runs them off its
//! async executor. [`Engine::open`] reconciles what the store says with what
//! is running (containers outlive `celld`).

pub mod containers;
mod error;
pub mod execs;
pub mod images;
mod lookup;
pub mod networks;

pub use error::{EngineError, Result};

use cell_store::Store;
use error::Context;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the engine keeps its state and finds its helpers.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// State directory (`--root`).
    pub root: PathBuf,
    /// The executable run as `EXE shim STATE_DIR` to supervise a process.
    pub shim_exe: PathBuf,
    /// The static busybox images are built from.
    pub busybox: PathBuf,
}

/// The use cases of cell over one state directory.
pub struct Engine {
    config: EngineConfig,
    store: Mutex<Store>,
    /// One lock per container, so that start, stop, exec and rm of the same
    /// container never interleave while different containers go on in
    /// parallel.
    container_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Serializes changes to networks and to the endpoints of running
    /// containers; taken before any container's lock.
    networks_lock: Mutex<()>,
    /// The kernel of the host's network namespace.
    host: HostNet,
}

/// Handles on the host's network namespace, opened once by the thread
/// that opens the engine (`celld`'s, in the host's namespace): an
/// rtnetlink socket and a libnftables context stay bound to it.
struct HostNet {
    links: cell_net::NetlinkLinks,
    firewall: cell_net::Nft,
    sysctl: cell_net::ProcSysctl,
}

impl Engine {
    /// Opens the state under `config.root` and reconciles it with what runs.
    pub fn open(config: EngineConfig) -> Result<Arc<Self>> {
        for dir in ["images", "containers", "execs", "netns"] {
            let path = config.root.join(dir);
            std::fs::create_dir_all(&path).context(|| format!("failed to create {}", path.display()))?;
        }
        let db = config.root.join("cell.db");
        let store = Store::open(&db).context(|| format!("failed to open the store {}", db.display()))?;
        let context = || "failed to open the host's network namespace".to_string();
        let host = HostNet {
            links: cell_net::NetlinkLinks::new().context(context)?,
            firewall: cell_net::Nft::new().context(context)?,
            sysctl: cell_net::ProcSysctl,
        };
        let engine = Arc::new(Self {
            config,
            store: Mutex::new(store),
            container_locks: Mutex::default(),
            networks_lock: Mutex::default(),
            host,
        });
        engine.reconcile()?;
        Ok(engine)
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves SQLite consistent (each
        // method is one transaction), so a poisoned lock is still usable.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn container_lock(&self, id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.container_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    fn image_dir(&self, id: &str) -> PathBuf {
        self.config.root.join("images").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.config.root.join("containers").join(id)
    }

    fn exec_dir(&self, exec_id: &str) -> PathBuf {
        self.config.root.join("execs").join(exec_id)
    }

    fn netns_path(&self, container_id: &str) -> PathBuf {
        self.config.root.join("netns").join(container_id)
    }

    /// Brings the store and the running processes into agreement: execs
    /// whose supervisor still runs are watched again, the others get their
    /// exit code recorded (they ended while `celld` was down). Then the
    /// kernel's network state is brought back to the store's (after a
    /// reboot nothing of it is left).
    fn reconcile(self: &Arc<Self>) -> Result<()> {
        let running = self
            .store()
            .running_execs()
            .context(|| "failed to list running execs".into())?;
        for record in running {
            if record
                .shim_pid
                .is_some_and(|pid| execs::is_our_shim(pid, &self.exec_dir(&record.exec.id)))
            {
                self.watch_exec(record);
            } else {
                tracing::info!(exec = %record.exec.id, "exec ended while celld was down");
                self.record_exit(&record)?;
            }
        }
        self.restore_networks()
    }
}

/// Current time, the one clock of the model.
fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
