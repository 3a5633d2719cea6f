//! Execution instances: `exec`, watching supervisors, recording exits,
//! and where a client reads a process's output from.

use crate::error::{Context, Result};
use crate::{Engine, now};
use cell_core::CoreError;
use cell_core::env::{process_env, validate_env};
use cell_core::ids::new_id;
use cell_core::model::{Container, Exec};
use cell_core::params::{ALLOW_RAW_SOCKETS, is_enabled};
use cell_runtime::spec::{ProcessSpec, Target};
use cell_store::ExecRecord;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
    /// Runs `cmd` in a running container.
    pub fn exec(self: &Arc<Self>, reference: &str, cmd: &[String], env: &[String]) -> Result<Exec> {
        if cmd.is_empty() {
            return Err(CoreError::invalid("no command given to exec").into());
        }
        for pair in env {
            validate_env(pair)?;
        }
        let container = self.find_container(reference)?;
        let lock = self.container_lock(&container.id);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let container = self.find_container(&container.id)?;
        let (true, Some(init_pid)) = (container.running, container.pid) else {
            return Err(CoreError::conflict(format!("container '{}' is not running", container.name)).into());
        };
        let exec = Exec {
            id: new_id(),
            container_id: container.id.clone(),
            cmd: cmd.to_vec(),
            is_init: false,
            created: now(),
            exit_code: None,
        };
        let spec = process_spec(&container, &exec, env, Target::Exec { init_pid });
        let started = self.spawn_exec(&spec)?;
        let record = ExecRecord {
            exec: exec.clone(),
            shim_pid: Some(started.shim_pid),
            pid: Some(started.pid),
        };
        self.store()
            .insert_exec(&record)
            .context(|| format!("failed to record exec {}", exec.id))?;
        self.watch_exec(record);
        Ok(exec)
    }

    /// Starts a supervisor for `spec` in a fresh state directory, which is
    /// removed again if the start fails.
    pub(crate) fn spawn_exec(&self, spec: &ProcessSpec) -> Result<cell_runtime::shim::Started> {
        let dir = self.exec_dir(&spec.exec_id);
        std::fs::create_dir_all(&dir).context(|| format!("failed to create {}", dir.display()))?;
        cell_runtime::shim::spawn_shim(&self.config.shim_exe, &dir, spec)
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&dir);
            })
            .context(|| {
                format!(
                    "failed to start {:?} in container {}",
                    spec.args.join(" "),
                    spec.container_id
                )
            })
    }

    /// The exec with this id.
    pub fn find_exec(&self, id: &str) -> Result<Exec> {
        let record = self
            .store()
            .exec(id)
            .context(|| format!("failed to look up exec {id}"))?;
        record
            .map(|r| r.exec)
            .ok_or_else(|| CoreError::not_found("execution instance", id).into())
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
    /// exit when it ends. A pidfd makes the wait immune to pid reuse.
    pub(crate) fn watch_exec(self: &Arc<Self>, record: ExecRecord) {
        let engine = Arc::clone(self);
        let exec_id = record.exec.id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("watch-{}", record.exec.id))
            .stack_size(128 * 1024)
            .spawn(move || {
                if let Some(pid) = record.shim_pid {
                    wait_for_exit(pid, None);
                }
                // An init's exit tears the container's network down: under
                // the container's lock, so that a `stop` racing this watcher
                // returns only once that is done, and a `start` never
                // overlaps it.
                let lock = record
                    .exec
                    .is_init
                    .then(|| engine.container_lock(&record.exec.container_id));
                let _guard = lock.as_ref().map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
                if let Err(e) = engine.record_exit(&record) {
                    tracing::error!(exec = %record.exec.id, "failed to record exit: {e}");
                }
            });
        if let Err(e) = spawned {
            tracing::error!(exec = %exec_id, "failed to start a watcher: {e}");
        }
    }

    /// Records how an exec ended (idempotent: the watcher and `stop` may
    /// both call it). For an init, the container is stopped and its network
    /// namespace removed.
    pub(crate) fn record_exit(&self, record: &ExecRecord) -> Result<()> {
        let dir = self.exec_dir(&record.exec.id);
        let code = read_exit_with_grace(&dir).unwrap_or(UNKNOWN_EXIT);
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
                self.detach_endpoints(&exec.container_id);
                let netns = self.netns_path(&exec.container_id);
                cell_net::netns::delete_netns(&netns)
                    .context(|| format!("failed to remove {}", netns.display()))?;
            }
        } else {
            self.store()
                .set_exec_exited(&exec.id, code)
                .context(|| format!("failed to record exec {}", exec.id))?;
        }
        Ok(())
    }

    /// Signals an exec's process with SIGTERM, then SIGKILL after `timeout`,
    /// waits for its supervisor to finish, and records the exit.
    pub(crate) fn terminate_exec(&self, record: &ExecRecord, timeout: Duration) -> Result<()> {
        if let (Some(pid), Some(shim)) = (record.pid, record.shim_pid) {
            let pidfd = pidfd_open(pid);
            if !timeout.is_zero() {
                signal(pidfd.as_ref(), pid, libc::SIGTERM);
                wait_for_exit(shim, Some(timeout));
            }
            if is_alive(shim) {
                signal(pidfd.as_ref(), pid, libc::SIGKILL);
                wait_for_exit(shim, Some(Duration::from_secs(10)));
            }
        }
        self.record_exit(record)
    }
}

/// What the supervisor of `exec` runs: the same environment and the same
/// rights for a container's init and for every exec in it.
pub(crate) fn process_spec(
    container: &Container,
    exec: &Exec,
    exec_env: &[String],
    target: Target,
) -> ProcessSpec {
    ProcessSpec {
        exec_id: exec.id.clone(),
        container_id: container.id.clone(),
        args: exec.cmd.clone(),
        env: process_env(&container.env, exec_env),
        cwd: "/".into(),
        keep_net_admin: container.network_driver.keeps_net_admin(),
        keep_net_raw: is_enabled(&container.params, ALLOW_RAW_SOCKETS),
        target,
    }
}

/// The exit code a finished supervisor left. It writes `exit.json` just
/// before it ends, so a short grace covers the moment in between.
fn read_exit_with_grace(dir: &Path) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        if let Some(code) = cell_runtime::shim::read_exit(dir) {
            return Some(code);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` is a supervisor of ours for `state_dir` (and not another
/// process that reused its pid after a reboot).
pub fn is_our_shim(pid: i32, state_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.get(1) == Some(&&b"shim"[..]) && args.get(2) == Some(&state_dir.as_os_str().as_encoded_bytes())
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a fresh fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn signal(pidfd: Option<&OwnedFd>, pid: i32, sig: i32) {
    match pidfd {
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
        Some(fd) => unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<u8>(),
                0,
            );
        },
        // SAFETY: kill has no memory-safety preconditions.
        None => unsafe {
            libc::kill(pid, sig);
        },
    }
}

fn is_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits until `pid` has ended, or `timeout` has passed.
fn wait_for_exit(pid: i32, timeout: Option<Duration>) {
    let Some(fd) = pidfd_open(pid) else {
        return; // already gone
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let ms = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 || (n == 0 && deadline.is_some()) {
            return;
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}
