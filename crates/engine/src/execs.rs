//! Execution instances: `exec`, watching supervisors, recording exits,
//! and where a client reads a process's output from.

use crate::Engine;
use crate::error::{Context, Result};
use cell_core::CoreError;
use cell_core::env::{process_env, validate_env};
use cell_core::ids::new_id;
use cell_core::model::{Container, Exec, Stack};
use cell_core::params::{ALLOW_RAW_SOCKETS, is_enabled};
use cell_runtime::seccomp::SocketFamily;
use cell_runtime::spec::{ProcessSpec, Target};
/// How a process's standard streams are set up; the API takes it as is.
pub use cell_runtime::spec::{Stdio, WindowSize};
use cell_store::ExecRecord;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit code recorded when a supervisor vanished without saying how its
/// process ended (it was killed).
pub const UNKNOWN_EXIT: i32 = 255;

/// Where to read an exec's framed output from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSource {
    /// The supervisor's attach socket: history, then live frames, then exit.
    Live(PathBuf),
    /// The supervisor is gone: its complete log, ending with the exit frame.
    Log(PathBuf),
}

impl Engine {
    /// Runs `cmd` in a running container, stdin `/dev/null`, no terminal.
    pub fn exec(self: &Arc<Self>, reference: &str, cmd: &[String], env: &[String]) -> Result<Exec> {
        self.exec_with_stdio(reference, cmd, env, Stdio::default())
    }

    /// Runs `cmd` in a running container with its standard streams set up
    /// as `stdio` says (stdin fed by attached clients, a terminal).
    pub fn exec_with_stdio(
        self: &Arc<Self>,
        reference: &str,
        cmd: &[String],
        env: &[String],
        stdio: Stdio,
    ) -> Result<Exec> {
        validate_stdio(&stdio)?;
        if cmd.is_empty() {
            return Err(CoreError::invalid("no command given to exec").into());
        }
        cell_core::command::validate_cmd(cmd)?;
        for pair in env {
            validate_env(pair)?;
        }
        let container = self.find_container(reference)?;
        let lock = self.container_lock(&container.id);
        let _guard = crate::lock(&lock);
        let container = self.find_container(&container.id)?;
        let (true, Some(init_pid)) = (container.running, container.pid) else {
            return Err(CoreError::conflict(format!("container '{}' is not running", container.name)).into());
        };
        let exec = Exec {
            id: new_id(),
            container_id: container.id.clone(),
            cmd: cmd.to_vec(),
            is_init: false,
            created: self.now(),
            exit_code: None,
        };
        let spec = process_spec(&container, &exec, env, Target::Exec { init_pid }, stdio);
        let record = self.spawn_exec(&exec, &spec)?;
        self.store()
            .set_exec_started(&record)
            .context(|| format!("failed to record exec {}", exec.id))?;
        self.watch_exec(record);
        Ok(exec)
    }

    /// Records `exec` (without pids: the intent), then starts a supervisor
    /// for `spec` in a fresh state directory. If the start fails, the row
    /// and the directory go again; if celld dies in between, reconciliation
    /// finds the supervisor by its directory.
    pub(crate) fn spawn_exec(&self, exec: &Exec, spec: &ProcessSpec) -> Result<ExecRecord> {
        let spec = &ProcessSpec {
            log: self.config.log_limits,
            ..spec.clone()
        };
        let mut record = ExecRecord {
            exec: exec.clone(),
            shim_pid: None,
            pid: None,
        };
        self.store()
            .insert_exec(&record)
            .context(|| format!("failed to record exec {}", exec.id))?;
        let dir = self.exec_dir(&exec.id);
        let started = std::fs::create_dir_all(&dir)
            .context(|| format!("failed to create {}", dir.display()))
            .and_then(|()| {
                self.runtime.spawn(&dir, spec).context(|| {
                    format!(
                        "failed to start {:?} in container {}",
                        spec.args.join(" "),
                        spec.container_id
                    )
                })
            });
        match started {
            Ok(started) => {
                record.shim_pid = Some(started.shim_pid);
                record.pid = Some(started.pid);
                Ok(record)
            }
            Err(e) => {
                let mut undo = Vec::new();
                if let Err(u) = self.store().delete_exec(&exec.id) {
                    undo.push(crate::EngineError::Store {
                        context: format!("failed to forget exec {}", exec.id),
                        source: u,
                    });
                }
                if let Err(u) = std::fs::remove_dir_all(&dir)
                    && u.kind() != std::io::ErrorKind::NotFound
                {
                    undo.push(crate::EngineError::Io {
                        context: format!("failed to remove {}", dir.display()),
                        source: u,
                    });
                }
                Err(crate::EngineError::with_undo(e, undo))
            }
        }
    }

    /// The exec with this id.
    pub fn find_exec(&self, id: &str) -> Result<Exec> {
        let record = self
            .read()?
            .exec(id)
            .context(|| format!("failed to look up exec {id}"))?;
        record
            .map(|r| r.exec)
            .ok_or_else(|| CoreError::not_found("execution instance", id).into())
    }

    /// Waits until the exit of exec `id` is recorded (for an init: the
    /// container is stopped and its network torn down), or `timeout` has
    /// passed; true if it was recorded. An attached client that has seen
    /// the exit frame waits for this, so that what it does next (inspect,
    /// start, rm) sees the container stopped.
    pub fn wait_exit_recorded(&self, id: &str, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut generation = self.exits.0.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let recorded = self
                .read()?
                .exec(id)
                .context(|| format!("failed to look up exec {id}"))?
                .is_none_or(|r| r.exec.exit_code.is_some());
            let left = deadline.saturating_duration_since(Instant::now());
            if recorded || left.is_zero() {
                return Ok(recorded);
            }
            let seen = *generation;
            while *generation == seen {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                generation = self
                    .exits
                    .1
                    .wait_timeout(generation, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }

    /// Wakes those waiting in [`Engine::wait_exit_recorded`].
    fn announce_exit(&self) {
        *self.exits.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.exits.1.notify_all();
    }

    /// Where the output of exec `id` can be read now.
    pub fn output_source(&self, id: &str) -> Result<OutputSource> {
        self.find_exec(id)?;
        let dir = self.exec_dir(id);
        let socket = cell_runtime::shim::attach_path(&dir);
        if socket.exists() {
            Ok(OutputSource::Live(socket))
        } else {
            Ok(OutputSource::Log(dir.join("output.log")))
        }
    }

    /// Watches an exec's supervisor on a thread of its own and records the
    /// exit when it ends.
    pub(crate) fn watch_exec(self: &Arc<Self>, record: ExecRecord) {
        let engine = Arc::clone(self);
        let exec_id = record.exec.id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("watch-{}", record.exec.id))
            .stack_size(128 * 1024)
            .spawn(move || {
                if let Some(pid) = record.shim_pid {
                    engine.runtime.wait_for_exit(pid, None);
                }
                if let Err(e) = engine.record_exit_locked(&record) {
                    tracing::error!(exec = %record.exec.id, "failed to record exit: {e}");
                }
            });
        if let Err(e) = spawned {
            tracing::error!(exec = %exec_id, "failed to start a watcher: {e}");
        }
    }

    /// [`Engine::record_exit`] under the container's lock for an init, so
    /// that a `stop` racing the watcher returns only once the teardown is
    /// done, and a `start` never overlaps it.
    pub(crate) fn record_exit_locked(&self, record: &ExecRecord) -> Result<()> {
        let lock = record
            .exec
            .is_init
            .then(|| self.container_lock(&record.exec.container_id));
        let _guard = lock.as_deref().map(crate::lock);
        self.record_exit(record)
    }

    /// Records how an exec ended (idempotent: the watcher and `stop` may
    /// both call it). For an init, the container is stopped and its network
    /// torn down; the teardown goes on past errors and reports them all.
    pub(crate) fn record_exit(&self, record: &ExecRecord) -> Result<()> {
        let recorded = self.record_exit_once(record);
        self.announce_exit();
        recorded
    }

    fn record_exit_once(&self, record: &ExecRecord) -> Result<()> {
        let dir = self.exec_dir(&record.exec.id);
        let code = self.exit_code_with_grace(&dir).unwrap_or(UNKNOWN_EXIT);
        let exec = &record.exec;
        if exec.is_init {
            let changed = self
                .store()
                .set_container_stopped(&exec.container_id, &exec.id, code)
                .context(|| format!("failed to record the exit of container {}", exec.container_id))?;
            // Only the report that stopped the container tears its network
            // down: a late one (the watcher after a `stop`) must not touch
            // a run that has started since.
            if changed {
                tracing::info!(container = %exec.container_id, code, "container exited");
                // First: the resolver's sockets keep the namespace alive.
                self.withdraw_names(&exec.container_id);
                self.teardown_container_net(&exec.container_id)?;
            }
        } else {
            self.store()
                .set_exec_exited(&exec.id, code)
                .context(|| format!("failed to record exec {}", exec.id))?;
        }
        Ok(())
    }

    /// Signals an exec's process with SIGTERM, then SIGKILL after
    /// `timeout`, and waits for its supervisor to finish. Holds no lock:
    /// the caller records the exit afterwards.
    pub(crate) fn terminate_exec(&self, record: &ExecRecord, timeout: Duration) {
        let (Some(pid), Some(shim)) = (record.pid, record.shim_pid) else {
            return;
        };
        if !timeout.is_zero() {
            self.runtime.signal(pid, libc::SIGTERM);
            if self.runtime.wait_for_exit(shim, Some(timeout)) {
                return;
            }
        }
        self.runtime.signal(pid, libc::SIGKILL);
        if !self.runtime.wait_for_exit(shim, Some(Duration::from_secs(10))) {
            tracing::warn!(exec = %record.exec.id, "the supervisor did not end 10 s after SIGKILL");
        }
    }

    /// The exit code a finished supervisor left. It writes it just before
    /// it ends, so a short grace covers the moment in between.
    fn exit_code_with_grace(&self, dir: &Path) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            if let Some(code) = self.runtime.exit_code(dir) {
                return Some(code);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What the supervisor of `exec` runs: the same environment and the same
/// rights for a container's init and for every exec in it.
pub(crate) fn process_spec(
    container: &Container,
    exec: &Exec,
    exec_env: &[String],
    target: Target,
    stdio: Stdio,
) -> ProcessSpec {
    ProcessSpec {
        exec_id: exec.id.clone(),
        container_id: container.id.clone(),
        args: exec.cmd.clone(),
        env: process_env(&container.env, exec_env),
        cwd: "/".into(),
        keep_net_admin: cell_net::container_driver::container_driver(container.network_driver)
            .keeps_net_admin(),
        keep_net_raw: is_enabled(&container.params, ALLOW_RAW_SOCKETS),
        target,
        // celld's limits, set by `spawn_exec`.
        log: Default::default(),
        stdio,
        refused_socket_family: refused_socket_family(container),
    }
}

/// The socket family a container's processes are refused: only on the
/// host's stack, which has every family the host has, and only for a
/// single-family stack. A container with a namespace of its own gets its
/// stack from its addresses and sysctls instead.
fn refused_socket_family(container: &Container) -> Option<SocketFamily> {
    if cell_net::container_driver::container_driver(container.network_driver).has_own_netns() {
        return None;
    }
    match container.stack {
        Stack::Ipv4 => Some(SocketFamily::Inet6),
        Stack::Ipv6 => Some(SocketFamily::Inet),
        Stack::Dual => None,
    }
}

/// Refuses a window size without a terminal: it would be silently lost.
pub(crate) fn validate_stdio(stdio: &Stdio) -> Result<()> {
    if stdio.window.is_some() && !stdio.tty {
        return Err(CoreError::invalid("a window size was given without a terminal (tty)").into());
    }
    Ok(())
}
