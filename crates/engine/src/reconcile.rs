//! Reconciliation at `celld` start: the store says what cell intends, and
//! the kernel and the running supervisors are brought to agree with it,
//! both ways. What is missing is made (after a reboot nothing of the
//! network is left); what cell made and the store no longer names is
//! removed; changes a crash cut short are finished (networks marked for
//! removal, endpoints being detached, supervisors spawned just before
//! their pids could be recorded).

use crate::error::{Context, Result};
use crate::{Engine, EngineError};
use cell_core::model::{Container, Endpoint, Network};
use cell_net::driver;
use cell_store::ExecRecord;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    /// Brings store, supervisors and kernel into agreement.
    pub(crate) fn reconcile(self: &Arc<Self>) -> Result<()> {
        self.reconcile_execs()?;
        self.finish_interrupted_removals()?;
        self.restore_networks()?;
        self.restore_reservations()?;
        self.remove_leftover_state()
    }

    /// Execs whose supervisor still runs are watched again; the others get
    /// their exit recorded (they ended while `celld` was down). An exec
    /// recorded without pids was being spawned when celld died: its
    /// supervisor, if it got as far as running, is found by its state
    /// directory and stopped, as its start was never confirmed.
    fn reconcile_execs(self: &Arc<Self>) -> Result<()> {
        let running = self
            .read()?
            .running_execs()
            .context(|| "failed to list running execs".into())?;
        for record in running {
            let dir = self.exec_dir(&record.exec.id);
            match record.shim_pid {
                Some(pid) if self.runtime.is_supervising(pid, &dir) => {
                    self.watch_exec(record);
                    continue;
                }
                Some(_) => tracing::info!(exec = %record.exec.id, "exec ended while celld was down"),
                None => self.stop_unconfirmed(&record),
            }
            self.record_exit(&record)?;
        }
        Ok(())
    }

    fn stop_unconfirmed(&self, record: &ExecRecord) {
        let dir = self.exec_dir(&record.exec.id);
        if let Some(shim) = self.runtime.find_supervisor(&dir) {
            tracing::info!(exec = %record.exec.id, shim, "stopping a process whose start was never recorded");
            self.runtime.kill_supervised(shim);
            if !self.runtime.wait_for_exit(shim, Some(Duration::from_secs(10))) {
                tracing::warn!(exec = %record.exec.id, shim, "the supervisor did not end after SIGKILL");
            }
        }
    }

    /// Finishes what a crash cut short: networks marked for removal are
    /// removed, endpoints marked as detaching are detached and forgotten.
    fn finish_interrupted_removals(&self) -> Result<()> {
        let (networks, detaching) = {
            let store = self.read()?;
            let context = || "failed to read interrupted removals".to_string();
            (
                store.networks_being_removed().context(context)?,
                store.endpoints_being_detached().context(context)?,
            )
        };
        let detaching: HashSet<String> = detaching.into_iter().collect();
        if !detaching.is_empty() {
            for (network, ep) in self.endpoint_pairs()? {
                if detaching.contains(&ep.id) {
                    let done = self.detach_endpoint(&network, &ep).and_then(|()| {
                        self.store()
                            .delete_endpoint(&ep.id)
                            .context(|| format!("failed to remove endpoint {}", ep.id))
                    });
                    match done {
                        Ok(()) => tracing::info!(endpoint = %ep.id, "finished an interrupted disconnect"),
                        Err(e) => tracing::error!(endpoint = %ep.id, "{e}"),
                    }
                }
            }
        }
        for id in networks {
            let Some(network) = self
                .read()?
                .network_by_id(&id)
                .context(|| format!("failed to read network {id}"))?
            else {
                continue;
            };
            match self.finish_network_removal(&network) {
                Ok(()) => tracing::info!(network = %network.name, "finished an interrupted removal"),
                Err(e) => tracing::error!(network = %network.name, "{e}"),
            }
        }
        Ok(())
    }

    fn endpoint_pairs(&self) -> Result<Vec<(Network, Endpoint)>> {
        let store = self.read()?;
        let context = || "failed to read networks".to_string();
        let networks = store.networks().context(context)?;
        Ok(store
            .endpoints()
            .context(context)?
            .into_iter()
            .filter_map(|ep| {
                let network = networks.iter().find(|n| n.id == ep.network_id)?.clone();
                Some((network, ep))
            })
            .collect())
    }

    /// Brings the kernel back to what the store says: cell's tables rebuilt
    /// with every element, bridges and forwarding of every network, the
    /// endpoints of running containers repaired, and veths and namespaces
    /// of containers that are not running removed.
    fn restore_networks(&self) -> Result<()> {
        let (networks, endpoints, running) = {
            let store = self.read()?;
            let context = || "failed to read networks".to_string();
            let networks = store.networks().context(context)?;
            let endpoints = store.endpoints().context(context)?;
            let running: Vec<Container> = store
                .containers()
                .context(context)?
                .into_iter()
                .filter(|c| c.running)
                .collect();
            (networks, endpoints, running)
        };
        let live: Vec<(&Network, &Endpoint, &Container)> = endpoints
            .iter()
            .filter_map(|ep| {
                let container = running.iter().find(|c| c.id == ep.container_id)?;
                let network = networks.iter().find(|n| n.id == ep.network_id)?;
                Some((network, ep, container))
            })
            .collect();
        let pairs: Vec<(&Network, &Endpoint)> = live.iter().map(|(n, e, _)| (*n, *e)).collect();
        // The published ports of running containers, to the endpoints they
        // have now.
        let mut forwards = Vec::new();
        for container in running.iter().filter(|c| !c.public_ports.is_empty()) {
            let theirs = live
                .iter()
                .filter(|(_, _, c)| c.id == container.id)
                .map(|(n, e, _)| (*n, *e));
            forwards.extend(cell_net::ports::container_forwards(
                theirs,
                &container.public_ports,
            ));
        }
        let host = self.net.host();
        driver::restore_firewall_with_ports(host.firewall, &networks, &pairs, &forwards)
            .context(|| "failed to restore cell's nftables tables".into())?;
        for network in &networks {
            if let Err(e) = driver::setup_network_links(host, network) {
                tracing::error!(network = %network.name, "failed to restore network: {e}");
            }
        }
        for (network, ep, container) in &live {
            let path = self.netns_path(&container.id);
            let repaired = self.net.open_netns(&path).and_then(|netns| {
                driver::repair_endpoint(host, netns.kernel(), network, ep, container.network_driver)
            });
            if let Err(e) = repaired {
                tracing::error!(container = %container.name, network = %network.name, "failed to restore endpoint: {e}");
            }
        }
        // Veths of endpoints whose container is not running: left by a
        // teardown that was cut short. Only names of known endpoints are
        // candidates (an endpoint row outlives its veth, never the other
        // way round), so links of the same shape that are not cell's stay.
        let stale: HashSet<String> = endpoints
            .iter()
            .filter(|ep| !running.iter().any(|c| c.id == ep.container_id))
            .filter_map(|ep| ep.epair.clone())
            .collect();
        let removed =
            driver::remove_links(host.links, &stale).context(|| "failed to remove stale veths".into())?;
        if !removed.is_empty() {
            tracing::info!(?removed, "removed veths of containers that are gone");
        }
        // Links cell marked as its own whose network or endpoint the store
        // no longer names (a removal cut short after its row went, or a
        // state directory reset): a user's link carries no mark, so it is
        // never taken for one of these.
        let wanted: HashSet<String> = networks
            .iter()
            .map(|n| n.id.clone())
            .chain(live.iter().map(|(_, ep, _)| ep.id.clone()))
            .collect();
        let listed = host
            .links
            .list_links()
            .context(|| "failed to list the host's links".into())?;
        for name in driver::unwanted_marked_links(&listed, &wanted) {
            match host.links.delete_link(&name) {
                Ok(()) => {
                    tracing::info!(link = %name, "removed a link of cell's that the store no longer names")
                }
                Err(e) => tracing::warn!(link = %name, "failed to remove a stale link: {e}"),
            }
        }
        self.remove_stale_netns(&running)
    }

    /// Unmounts the network namespaces of containers that do not run (a
    /// teardown cut short by a crash); the namespaces die with the mounts.
    fn remove_stale_netns(&self, running: &[Container]) -> Result<()> {
        let dir = self.config.root.join("netns");
        let namespaces = self
            .net
            .netns_in(&dir)
            .context(|| format!("failed to list {}", dir.display()))?;
        for path in namespaces {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if running.iter().any(|c| c.id == name) {
                continue;
            }
            match self.net.delete_netns(&path) {
                Ok(()) => tracing::info!(container = %name, "removed a stale network namespace"),
                Err(e) => tracing::warn!(container = %name, "{e}"),
            }
        }
        Ok(())
    }

    /// Removes the state directories of containers and execs the store no
    /// longer names (a `rm` cut short after its row went), stopping any
    /// supervisor that still runs in one.
    fn remove_leftover_state(&self) -> Result<()> {
        let (containers, execs) = {
            let store = self.read()?;
            let context = || "failed to read containers".to_string();
            let containers: HashSet<String> = store
                .containers()
                .context(context)?
                .into_iter()
                .map(|c| c.id)
                .collect();
            let mut execs = HashSet::new();
            for id in &containers {
                execs.extend(store.exec_ids_of_container(id).context(context)?);
            }
            (containers, execs)
        };
        let mut errors = Vec::new();
        for (dir, known) in [("containers", &containers), ("execs", &execs)] {
            let Ok(entries) = std::fs::read_dir(self.config.root.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if known.contains(&name) {
                    continue;
                }
                let path = entry.path();
                if let Some(shim) = self.runtime.find_supervisor(&path) {
                    self.runtime.kill_supervised(shim);
                    self.runtime.wait_for_exit(shim, Some(Duration::from_secs(10)));
                }
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => tracing::info!("removed leftover {}", path.display()),
                    Err(e) => errors.push(EngineError::Io {
                        context: format!("failed to remove leftover {}", path.display()),
                        source: e,
                    }),
                }
            }
        }
        for e in &errors {
            tracing::warn!("{e}");
        }
        Ok(())
    }
}
