//! Container use cases: create, start, stop, restart, remove, prune, list,
//! inspect.

use crate::error::{Context, Result};
use crate::{Engine, now};
use cell_core::CoreError;
use cell_core::env::validate_env;
use cell_core::ids::{new_id, random_name, validate_name};
use cell_core::model::{Container, Exec, NetworkDriver};
use cell_core::params::validate_param;
use cell_core::port::PortSpec;
use cell_runtime::spec::{RootfsSpec, Target};
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
        let driver: NetworkDriver = match &req.driver {
            Some(d) => d.parse()?,
            None if req.networks.is_empty() => NetworkDriver::Host,
            None => NetworkDriver::Ipnet,
        };
        let ports = req
            .ports
            .iter()
            .map(|p| p.parse::<PortSpec>())
            .collect::<Result<Vec<_>, _>>()?;
        if !ports.is_empty() && !driver.can_publish_ports() {
            return Err(CoreError::invalid(format!(
                "cannot publish ports of a container using the '{driver}' network driver"
            ))
            .into());
        }
        if !req.networks.is_empty() && !driver.can_join_networks() {
            return Err(CoreError::invalid(format!(
                "containers using the '{driver}' network driver cannot join networks"
            ))
            .into());
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
            .store()
            .container_by_name(&name)
            .context(|| format!("failed to look up {name}"))?
            .is_some()
        {
            return Err(CoreError::conflict(format!("container name '{name}' is already in use")).into());
        }
        let image = self.image_for_run(&req.image)?;
        let container = Container {
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
            created: now(),
            running: false,
            pid: None,
            exit_code: None,
        };
        self.insert_container_with_endpoints(&container, &networks, req.ip.as_deref(), req.ip6.as_deref())?;
        Ok(container)
    }

    fn free_random_name(&self) -> Result<String> {
        let store = self.store();
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

    /// Starts a container's init; returns its execution instance.
    pub fn start_container(self: &Arc<Self>, reference: &str) -> Result<Exec> {
        let container = self.find_container(reference)?;
        let lock = self.container_lock(&container.id);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
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
        let netns = if container.network_driver.has_own_netns() {
            let path = self.netns_path(&container.id);
            // A netns left by a container that died while celld was down.
            cell_net::netns::delete_netns(&path)
                .context(|| format!("failed to remove stale netns {}", path.display()))?;
            cell_net::netns::create_netns(&path)
                .context(|| format!("failed to create the network namespace of {}", container.name))?;
            if let Err(e) = self.attach_endpoints(&container) {
                let _ = cell_net::netns::delete_netns(&path);
                return Err(e);
            }
            Some(path)
        } else {
            None
        };
        let exec = Exec {
            id: new_id(),
            container_id: container.id.clone(),
            cmd: container.cmd.clone(),
            is_init: true,
            created: now(),
            exit_code: None,
        };
        let target = Target::Init {
            rootfs,
            hostname: container.name.clone(),
            netns: netns.clone(),
            files: container_files(&container),
        };
        let spec = crate::execs::process_spec(&container, &exec, &[], target);
        let started = self.spawn_exec(&spec);
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                if let Some(path) = &netns {
                    self.detach_endpoints(&container.id);
                    let _ = cell_net::netns::delete_netns(path);
                }
                return Err(e);
            }
        };
        let record = ExecRecord {
            exec: exec.clone(),
            shim_pid: Some(started.shim_pid),
            pid: Some(started.pid),
        };
        self.store()
            .set_container_running(&container.id, started.pid, &record)
            .context(|| format!("failed to record the start of {}", container.name))?;
        self.watch_exec(record);
        Ok(exec)
    }

    /// Stops a running container: SIGTERM, then SIGKILL after `timeout`.
    /// Stopping a stopped container succeeds and changes nothing.
    pub fn stop_container(self: &Arc<Self>, reference: &str, timeout: Duration) -> Result<Container> {
        let container = self.find_container(reference)?;
        let lock = self.container_lock(&container.id);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        self.stop_locked(&container.id, timeout)?;
        self.find_container(&container.id)
    }

    fn stop_locked(self: &Arc<Self>, container_id: &str, timeout: Duration) -> Result<()> {
        let Some(init) = self.init_exec(container_id)? else {
            return Ok(());
        };
        self.terminate_exec(&init, timeout)
    }

    /// The running init exec of a container, if it runs.
    fn init_exec(&self, container_id: &str) -> Result<Option<ExecRecord>> {
        self.store()
            .running_init_exec(container_id)
            .context(|| format!("failed to find the init of {container_id}"))
    }

    /// Stops then starts a container.
    pub fn restart_container(self: &Arc<Self>, reference: &str, timeout: Duration) -> Result<Exec> {
        let container = self.stop_container(reference, timeout)?;
        self.start_container(&container.id)
    }

    /// Removes a container; a running one only with `force` (it is killed).
    pub fn remove_container(self: &Arc<Self>, reference: &str, force: bool) -> Result<Container> {
        let container = self.find_container(reference)?;
        let lock = self.container_lock(&container.id);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let container = self.find_container(&container.id)?;
        if container.running {
            if !force {
                return Err(CoreError::conflict(format!(
                    "container '{}' is running: stop it first or remove it with -f",
                    container.name
                ))
                .into());
            }
            self.stop_locked(&container.id, Duration::ZERO)?;
        }
        // Stopped containers hold no kernel objects; this is for one whose
        // teardown failed half-way. The endpoint rows go with the row.
        self.detach_endpoints(&container.id);
        let exec_ids = self
            .store()
            .exec_ids_of_container(&container.id)
            .context(|| format!("failed to remove container {}", container.name))?;
        self.store()
            .delete_container(&container.id)
            .context(|| format!("failed to remove container {}", container.name))?;
        // The row is gone: from here on, leftovers are only disk space, so
        // keep going and log rather than fail half-way.
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
        let _ = cell_net::netns::delete_netns(&self.netns_path(&container.id));
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
            .store()
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
