//! Container use cases: create, start, stop, restart, remove, prune, list,
//! inspect.

use crate::Engine;
use crate::error::{Context, Result};
use cell_core::CoreError;
use cell_core::env::validate_env;
use cell_core::ids::{new_id, random_name, validate_name};
use cell_core::model::{Container, Exec, NetworkDriver};
use cell_core::params::validate_param;
use cell_runtime::spec::{RootfsSpec, Stdio, Target};
use cell_store::ExecRecord;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// What `cell create` / `cell run` ask for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    /// Image name, id or id prefix.
    pub image: String,
    /// Name; random when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Command; the image's when empty.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Network driver; `host` when absent.
    #[serde(default)]
    pub driver: Option<String>,
    /// Networks to join.
    #[serde(default)]
    pub networks: Vec<String>,
    /// A fixed IPv4 address on the first network.
    #[serde(default)]
    pub ip: Option<String>,
    /// A fixed IPv6 address on the first network.
    #[serde(default)]
    pub ip6: Option<String>,
    /// Published ports, as `[HOST_IP:]HOST_PORT[:CONTAINER_PORT][/PROTO]`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// `KEY=VALUE` pairs.
    #[serde(default)]
    pub env: Vec<String>,
    /// `-J` parameters.
    #[serde(default)]
    pub params: Vec<String>,
}

/// `container inspect`, in Kleene's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerInspect {
    /// The container.
    pub container: Container,
    /// Its network endpoints.
    pub container_endpoints: Vec<serde_json::Value>,
    /// Its mount points.
    pub container_mountpoints: Vec<serde_json::Value>,
}

/// How long `stop` waits after SIGTERM before SIGKILL, unless told.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Engine {
    /// Checks a create request completely, then records the container.
    /// Nothing is written when any part of the request is wrong.
    pub fn create_container(&self, req: &CreateContainer) -> Result<Container> {
        cell_core::command::validate_cmd(&req.cmd)?;
        let driver: NetworkDriver = match &req.driver {
            Some(d) => d.parse()?,
            None if req.networks.is_empty() => NetworkDriver::Host,
            None => NetworkDriver::Ipnet,
        };
        let ports = crate::ports::parse_specs(&req.ports)?;
        if !ports.is_empty() {
            cell_net::container_driver::container_driver(driver).check_publish()?;
        }
        let networks =
            self.networks_for_new_container(driver, &req.networks, req.ip.as_deref(), req.ip6.as_deref())?;
        for pair in &req.env {
            validate_env(pair)?;
        }
        for param in &req.params {
            validate_param(param)?;
        }
        let name = match &req.name {
            Some(name) => {
                validate_name("container", name)?;
                name.clone()
            }
            None => self.free_random_name()?,
        };
        if self
            .read()?
            .container_by_name(&name)
            .context(|| format!("failed to look up {name}"))?
            .is_some()
        {
            return Err(CoreError::conflict(format!("container name '{name}' is already in use")).into());
        }
        if !ports.is_empty() {
            crate::ports::check_publishable(&name, &networks, &ports)?;
            // A trial claim of the fixed ports, given up at once, so that a
            // taken or foreign host port is refused before the image is
            // built; the real claim is made with the row, under the
            // store's writer.
            let fixed: Vec<_> = ports
                .iter()
                .filter(|p| p.host_port != cell_core::port::AUTO_PORT)
                .cloned()
                .collect();
            drop(self.claim_ports(&*self.read()?, &fixed)?);
        }
        let image = self.image_for_run(&req.image)?;
        let mut container = Container {
            id: new_id(),
            name: name.clone(),
            image_id: image.id,
            cmd: if req.cmd.is_empty() {
                image.cmd
            } else {
                req.cmd.clone()
            },
            user: "root".into(),
            env: req.env.clone(),
            network_driver: driver,
            public_ports: ports,
            params: req.params.clone(),
            created: self.now(),
            running: false,
            pid: None,
            exit_code: None,
        };
        let held = self.insert_container_with_endpoints(
            &mut container,
            &networks,
            req.ip.as_deref(),
            req.ip6.as_deref(),
        )?;
        self.keep_reservations(&container.id, held);
        Ok(container)
    }

    fn free_random_name(&self) -> Result<String> {
        let store = self.read()?;
        for _ in 0..100 {
            let name = random_name();
            if store
                .container_by_name(&name)
                .context(|| "failed to pick a name".into())?
                .is_none()
            {
                return Ok(name);
            }
        }
        // Thousands of containers exhaust the word list; a suffix keeps it unique.
        Ok(format!("{}_{}", random_name(), &new_id()[..4]))
    }

    /// Starts a container's init; returns its execution instance. Its
    /// network namespace and endpoints are made first; if any step fails,
    /// what was done is undone and both errors are reported.
    pub fn start_container(self: &Arc<Self>, reference: &str) -> Result<Exec> {
        self.start_container_with_stdio(reference, Stdio::default())
    }

    /// [`Engine::start_container`] with the init's standard streams set up
    /// as `stdio` says (`cell run -it`). Only this start has them: a later
    /// `start` runs the init without a terminal again.
    pub fn start_container_with_stdio(self: &Arc<Self>, reference: &str, stdio: Stdio) -> Result<Exec> {
        crate::execs::validate_stdio(&stdio)?;
        let container = self.find_container(reference)?;
        let lock = self.container_lock(&container.id);
        let _guard = crate::lock(&lock);
        // Re-read under the lock: a concurrent start may have won.
        let container = self.find_container(&container.id)?;
        if container.running {
            return Err(
                CoreError::conflict(format!("container '{}' is already running", container.name)).into(),
            );
        }
        let image_rootfs = self.image_rootfs(&container.image_id);
        let dir = self.container_dir(&container.id);
        let rootfs = RootfsSpec {
            lower: image_rootfs,
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
        };
        for d in [&rootfs.upper, &rootfs.work, &rootfs.merged] {
            std::fs::create_dir_all(d).context(|| format!("failed to create {}", d.display()))?;
        }
        let netns = self.setup_container_net(&container)?;
        let exec = Exec {
            id: new_id(),
            container_id: container.id.clone(),
            cmd: container.cmd.clone(),
            is_init: true,
            created: self.now(),
            exit_code: None,
        };
        let target = Target::Init {
            rootfs,
            hostname: container.name.clone(),
            netns,
            files: container_files(&container),
        };
        let spec = crate::execs::process_spec(&container, &exec, &[], target, stdio);
        let recorded = self.spawn_exec(&exec, &spec).and_then(|record| {
            self.store()
                .set_container_running(&container.id, &record)
                .context(|| format!("failed to record the start of {}", container.name))
                .map(|()| record)
        });
        let record = match recorded {
            Ok(record) => record,
            Err(e) => {
                let undo = self
                    .teardown_container_net(&container.id)
                    .err()
                    .into_iter()
                    .collect();
                return Err(crate::EngineError::with_undo(e, undo));
            }
        };
        self.watch_exec(record);
        Ok(exec)
    }

    /// Stops a running container: SIGTERM, then SIGKILL after `timeout`.
    /// Stopping a stopped container succeeds and changes nothing. The
    /// container's lock is not held while the process is waited for, so
    /// connect, exec or inspect of it are not held up by a long timeout.
    pub fn stop_container(self: &Arc<Self>, reference: &str, timeout: Duration) -> Result<Container> {
        let container = self.find_container(reference)?;
        self.stop_by_id(&container.id, timeout)?;
        self.find_container(&container.id)
    }

    fn stop_by_id(&self, container_id: &str, timeout: Duration) -> Result<()> {
        let init = {
            let lock = self.container_lock(container_id);
            let _guard = crate::lock(&lock);
            self.init_exec(container_id)?
        };
        if let Some(init) = init {
            self.terminate_exec(&init, timeout);
            self.record_exit_locked(&init)?;
        }
        Ok(())
    }

    /// The running init exec of a container, if it runs.
    fn init_exec(&self, container_id: &str) -> Result<Option<ExecRecord>> {
        self.read()?
            .running_init_exec(container_id)
            .context(|| format!("failed to find the init of {container_id}"))
    }

    /// Stops then starts a container.
    pub fn restart_container(self: &Arc<Self>, reference: &str, timeout: Duration) -> Result<Exec> {
        let container = self.stop_container(reference, timeout)?;
        self.start_container(&container.id)
    }

    /// Removes a container; a running one only with `force` (it is killed).
    /// The kill happens without the container's lock; if a start wins the
    /// lock in between, the new run is killed too, a few times at most.
    pub fn remove_container(self: &Arc<Self>, reference: &str, force: bool) -> Result<Container> {
        let found = self.find_container(reference)?;
        let lock = self.container_lock(&found.id);
        let mut attempts = 0;
        let (_guard, container) = loop {
            let guard = crate::lock(&lock);
            let container = self.find_container(&found.id)?;
            if !container.running {
                break (guard, container);
            }
            if !force {
                return Err(running_conflict(&container.name));
            }
            attempts += 1;
            if attempts > 5 {
                return Err(CoreError::conflict(format!(
                    "container '{}' kept being started again while it was removed",
                    container.name
                ))
                .into());
            }
            drop(guard);
            self.stop_by_id(&container.id, Duration::ZERO)?;
        };
        // Stopped containers hold no kernel objects; this is for one whose
        // teardown failed half-way.
        if let Err(e) = self.teardown_container_net(&container.id) {
            tracing::warn!(container = %container.name, "{e}");
        }
        let exec_ids = self
            .read()?
            .exec_ids_of_container(&container.id)
            .context(|| format!("failed to remove container {}", container.name))?;
        // The row goes first (the endpoint rows with it): from here on,
        // leftovers are only disk space, which celld's next start removes.
        self.store()
            .delete_container(&container.id)
            .context(|| format!("failed to remove container {}", container.name))?;
        for path in exec_ids
            .iter()
            .map(|id| self.exec_dir(id))
            .chain([self.container_dir(&container.id)])
        {
            if let Err(e) = std::fs::remove_dir_all(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("failed to remove {}: {e}", path.display());
            }
        }
        self.release_reservations(&container.id, None);
        self.container_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&container.id);
        Ok(container)
    }

    /// Removes every stopped container; returns their ids.
    pub fn prune_containers(self: &Arc<Self>) -> Result<Vec<String>> {
        let stopped: Vec<Container> = self
            .containers(true)?
            .into_iter()
            .filter(|c| !c.running)
            .collect();
        let mut removed = Vec::new();
        for c in stopped {
            match self.remove_container(&c.id, false) {
                Ok(c) => removed.push(c.id),
                // Started again meanwhile: not prunable any more.
                Err(crate::EngineError::User(e)) if e.kind == cell_core::ErrorKind::Conflict => {}
                Err(crate::EngineError::User(e)) if e.kind == cell_core::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Containers, running ones only unless `all`.
    pub fn containers(&self, all: bool) -> Result<Vec<Container>> {
        let list = self
            .read()?
            .containers()
            .context(|| "failed to list containers".into())?;
        Ok(list.into_iter().filter(|c| all || c.running).collect())
    }

    /// `container inspect`.
    pub fn inspect_container(&self, reference: &str) -> Result<ContainerInspect> {
        let container = self.find_container(reference)?;
        Ok(ContainerInspect {
            container_endpoints: self.container_endpoints_json(&container.id)?,
            container,
            container_mountpoints: Vec::new(),
        })
    }

    /// `network inspect host`: the containers that share the host's stack,
    /// in the shape of any other network's inspect (seed 002).
    pub fn inspect_host_network(&self) -> Result<serde_json::Value> {
        let endpoints: Vec<serde_json::Value> = self
            .containers(true)?
            .into_iter()
            .filter(|c| c.network_driver == NetworkDriver::Host)
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "network_id": "host",
                    "container_id": c.id,
                    "container_name": c.name,
                    "epair": null,
                    "ip_address": "",
                    "ip_address6": "",
                })
            })
            .collect();
        Ok(serde_json::json!({
            "network": {
                "id": "host",
                "name": "host",
                "type": "host",
                "interface": "",
                "subnet": "",
                "subnet6": "",
                "gateway": "",
                "gateway6": "",
                "nat": "",
                "icc": true,
                "internal": false,
            },
            "network_endpoints": endpoints,
        }))
    }
}

fn running_conflict(name: &str) -> crate::EngineError {
    CoreError::conflict(format!(
        "container '{name}' is running: stop it first or remove it with -f"
    ))
    .into()
}

/// Files written into the container's root at each start: its name in
/// `/etc/hosts` and `/etc/hostname`, and the host's resolver (pot's
/// `inherit`).
fn container_files(container: &Container) -> Vec<(String, String)> {
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n",
        name = container.name
    );
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    vec![
        ("/etc/hosts".into(), hosts),
        ("/etc/hostname".into(), format!("{}\n", container.name)),
        ("/etc/resolv.conf".into(), resolv),
    ]
}
