//! cell-engine: cell's use cases, and the repair of kernel state at start.
//!
//! [`Engine`] is what `celld` serves: images ([`images`]), containers and
//! their execution instances ([`containers`], [`execs`]) and their output
//! ([`logs`]), networks and the
//! endpoints that attach containers to them ([`networks`]), published
//! ports ([`ports`], held on the host through [`host_ports`]). Every use case
//! checks its input first, records intent in the store, then acts on the
//! system through the backends its caller passed in ([`Backends`]: the
//! network kernel, the process runtime, the clock), undoing what it did if a
//! later step fails. The functions are blocking; the daemon runs them off
//! its async executor. [`Engine::open`] reconciles what the store says with
//! what is running and what the kernel holds ([`reconcile`]: containers
//! outlive `celld`, and a crash may cut a change short).

pub mod backends;
pub mod containers;
mod dns;
mod error;
pub mod execs;
pub mod host_ports;
pub mod images;
pub mod info;
pub mod logs;
mod lookup;
pub mod networks;
pub mod pools;
pub mod ports;
pub mod reconcile;
mod resolver;

pub use backends::{
    Backends, Clock, ContainerNames, FakeRuntime, FixedClock, NamedEndpoint, NoResolver, RecordingResolver,
    Resolver, ResolverCall, Runtime, ShimRuntime, SystemClock,
};
pub use error::{EngineError, Result};
pub use host_ports::{FakeHostPorts, HostPorts, SocketHostPorts};

use cell_net::NetKernel;
use cell_store::Store;
use error::Context;
use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the engine keeps its state and finds its helpers.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// State directory (`--root`).
    pub root: PathBuf,
    /// The static busybox images are built from.
    pub busybox: PathBuf,
    /// How much output each process's supervisor keeps on disk.
    pub log_limits: cell_runtime::spec::LogLimits,
    /// Where automatic host ports of published ports come from; the
    /// kernel's ephemeral range when absent (`port_range` in celld.toml).
    pub port_range: Option<cell_core::port::PortRange>,
    /// The network stack of a container created without `-S` (celld.toml's
    /// `stack`).
    pub stack: cell_core::model::Stack,
    /// The address pools networks without `--subnet` are carved from.
    pub pools: pools::PoolConfig,
}

/// The use cases of cell over one state directory.
///
/// Locks, and what they never wait for: a container's lock serializes
/// start, stop's bookkeeping, exec, rm, connect and disconnect of that
/// container, and is never held while a process is being waited for (a
/// `stop -t 30` holds it only to read the init and, after the exit, to
/// record it). `create_lock` serializes the checks of `network create`
/// against each other and is held only for that. No lock is held while
/// another is waited for, except a container's lock around the store's.
/// Writes go through one connection; reads take a connection of their own
/// from a pool, so they never queue behind a write (SQLite in WAL mode).
pub struct Engine {
    config: EngineConfig,
    net: Arc<dyn NetKernel>,
    runtime: Arc<dyn Runtime>,
    clock: Arc<dyn Clock>,
    host_ports: Arc<dyn host_ports::HostPorts>,
    /// The bound sockets that hold each container's published host ports,
    /// for as long as the container exists ([`ports`]).
    reservations: Mutex<HashMap<String, Vec<(cell_core::port::PortSpec, host_ports::Reservation)>>>,
    /// Where the search for the next automatic host port starts.
    next_auto_port: Mutex<u16>,
    resolver: Arc<dyn Resolver>,
    writer: Mutex<Store>,
    readers: Mutex<Vec<Store>>,
    db: PathBuf,
    /// One lock per container, so that start, stop, exec and rm of the same
    /// container never interleave while different containers go on in
    /// parallel.
    container_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Serializes network creation: names, interfaces and subnets are
    /// checked against the networks there are.
    create_lock: Mutex<()>,
    /// Counts recorded exits, and wakes those waiting for one.
    exits: (Mutex<u64>, std::sync::Condvar),
    /// The pools, as resolved at open.
    pools: cell_core::pool::Pools,
    /// The id of the `public` network, once it is known to exist.
    public_id: std::sync::OnceLock<String>,
    /// Serializes the bring-up of `public`'s bridge at its first joins.
    public_lock: Mutex<()>,
}

/// A read connection borrowed from the pool; it goes back when dropped.
pub(crate) struct Reader<'a> {
    engine: &'a Engine,
    store: Option<Store>,
}

impl Deref for Reader<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
            .as_ref()
            .expect("a reader holds its store until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.engine
                .readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(store);
        }
    }
}

impl Engine {
    /// Opens the state under `config.root`, acting through `backends`, and
    /// reconciles it with what runs and what the kernel holds.
    pub fn open(config: EngineConfig, backends: Backends) -> Result<Arc<Self>> {
        for dir in ["images", "containers", "execs", "netns"] {
            let path = config.root.join(dir);
            std::fs::create_dir_all(&path).context(|| format!("failed to create {}", path.display()))?;
        }
        let db = config.root.join("cell.db");
        let mut store = Store::open(&db).context(|| format!("failed to open the store {}", db.display()))?;
        let pools = config.pools.resolve(&mut store)?;
        {
            let context = || "failed to read networks".to_string();
            let networks = store.networks().context(context)?;
            let origins = store.network_origins().context(context)?;
            pools::check_pools_beside(&pools, &networks, &origins)?;
        }
        let engine = Arc::new(Self {
            config,
            net: backends.net,
            runtime: backends.runtime,
            clock: backends.clock,
            host_ports: backends.ports,
            reservations: Mutex::default(),
            next_auto_port: Mutex::new(0),
            resolver: backends.resolver,
            writer: Mutex::new(store),
            readers: Mutex::default(),
            db,
            container_locks: Mutex::default(),
            create_lock: Mutex::default(),
            exits: Default::default(),
            pools,
            public_id: std::sync::OnceLock::new(),
            public_lock: Mutex::default(),
        });
        engine.ensure_public()?;
        engine.reconcile()?;
        Ok(engine)
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// The store, for a change (one transaction per method).
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves SQLite consistent (each
        // method is one transaction), so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection for reading, which never waits for a writer.
    pub(crate) fn read(&self) -> Result<Reader<'_>> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let store = match pooled {
            Some(store) => store,
            None => {
                Store::open(&self.db).context(|| format!("failed to open the store {}", self.db.display()))?
            }
        };
        Ok(Reader {
            engine: self,
            store: Some(store),
        })
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

    /// Now, by the engine's clock.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// Takes a lock whose holder may have panicked: every change under these
/// locks is one store transaction, so the state is still consistent.
fn lock(mutex: &Mutex<()>) -> MutexGuard<'_, ()> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
