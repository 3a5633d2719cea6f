//! What the engine acts through, passed in by its caller: the network
//! kernel ([`cell_net::NetKernel`]), the process runtime ([`Runtime`]), the
//! clock ([`Clock`]) and the host's ports ([`crate::host_ports::HostPorts`]).
//! `celld` wires the real ones ([`Backends::linux`]); tests wire
//! [`cell_net::FakeNetKernel`], [`FakeRuntime`], [`FixedClock`] and
//! [`crate::FakeHostPorts`], so every use case and its failure paths run without
//! root.

use cell_runtime::RuntimeError;
use cell_runtime::process;
use cell_runtime::shim::Started;
use cell_runtime::spec::ProcessSpec;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The engine's backends.
#[derive(Clone)]
pub struct Backends {
    /// The host's and containers' network namespaces.
    pub net: Arc<dyn cell_net::NetKernel>,
    /// Supervised processes.
    pub runtime: Arc<dyn Runtime>,
    /// The time of creation of images, containers and execs.
    pub clock: Arc<dyn Clock>,
    /// The host's ports: where automatic ones come from, and the sockets
    /// that hold published ones.
    pub ports: Arc<dyn crate::host_ports::HostPorts>,
}

impl Backends {
    /// The real kernel, supervisors run as `shim_exe shim STATE_DIR`, and
    /// the system clock. The network kernel is bound to the calling
    /// thread's network namespace.
    pub fn linux(shim_exe: PathBuf) -> cell_net::Result<Self> {
        Ok(Self {
            net: Arc::new(cell_net::LinuxNetKernel::new()?),
            runtime: Arc::new(ShimRuntime { shim_exe }),
            clock: Arc::new(SystemClock),
            ports: Arc::new(crate::host_ports::SocketHostPorts),
        })
    }
}

/// Supervised processes: each runs under a supervisor whose state (spec,
/// output, exit code) is in a directory of its own.
///
/// Pids are host pids. Implementations must not be fooled by pid reuse:
/// a supervisor is identified by its pid together with its state directory.
pub trait Runtime: Send + Sync {
    /// Starts a supervisor for `spec` with its state in `dir` (which
    /// exists), and returns once the process runs or failed to start.
    fn spawn(&self, dir: &Path, spec: &ProcessSpec) -> Result<Started, RuntimeError>;
    /// Sends `signal` to a supervised process; nothing if it is gone.
    fn signal(&self, pid: i32, signal: i32);
    /// Waits until the supervisor `shim_pid` has ended or `timeout` has
    /// passed (`None`: no limit); true if it ended.
    fn wait_for_exit(&self, shim_pid: i32, timeout: Option<Duration>) -> bool;
    /// Whether `shim_pid` is alive and supervises `dir`.
    fn is_supervising(&self, shim_pid: i32, dir: &Path) -> bool;
    /// The supervisor of `dir`, if one runs, found even when its pid was
    /// never recorded (celld died while spawning it).
    fn find_supervisor(&self, dir: &Path) -> Option<i32>;
    /// Kills what the supervisor `shim_pid` runs (SIGKILL), so that the
    /// supervisor records the exit and ends.
    fn kill_supervised(&self, shim_pid: i32);
    /// The exit code the supervisor of `dir` recorded, once it has one.
    fn exit_code(&self, dir: &Path) -> Option<i32>;
}

/// The real [`Runtime`]: `celld shim` supervisors.
pub struct ShimRuntime {
    /// The executable run as `EXE shim STATE_DIR`.
    pub shim_exe: PathBuf,
}

impl Runtime for ShimRuntime {
    fn spawn(&self, dir: &Path, spec: &ProcessSpec) -> Result<Started, RuntimeError> {
        cell_runtime::shim::spawn_shim(&self.shim_exe, dir, spec)
    }

    fn signal(&self, pid: i32, signal: i32) {
        if let Err(e) = process::signal(pid, signal) {
            tracing::warn!(pid, signal, "failed to signal: {e}");
        }
    }

    fn wait_for_exit(&self, shim_pid: i32, timeout: Option<Duration>) -> bool {
        process::wait_for_exit(shim_pid, timeout)
    }

    fn is_supervising(&self, shim_pid: i32, dir: &Path) -> bool {
        process::is_our_shim(shim_pid, dir)
    }

    fn find_supervisor(&self, dir: &Path) -> Option<i32> {
        process::find_shim(dir)
    }

    fn kill_supervised(&self, shim_pid: i32) {
        // The supervisor's children are the process it runs (the first
        // process of a container's pid namespace, whose death ends them all).
        let children =
            std::fs::read_to_string(format!("/proc/{shim_pid}/task/{shim_pid}/children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|s| s.parse().ok()) {
            self.signal(child, libc::SIGKILL);
        }
    }

    fn exit_code(&self, dir: &Path) -> Option<i32> {
        cell_runtime::shim::read_exit(dir)
    }
}

/// Where the engine takes the time from.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told, for tests.
pub struct FixedClock(pub Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock at `t`.
    pub fn at(t: DateTime<Utc>) -> Self {
        Self(Mutex::new(t))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// One process of [`FakeRuntime`].
#[derive(Debug, Clone)]
pub struct FakeProcess {
    /// Its state directory.
    pub dir: PathBuf,
    /// The spec it was started with.
    pub spec: ProcessSpec,
    /// The supervisor's pid.
    pub shim_pid: i32,
    /// The process's pid.
    pub pid: i32,
    /// Its exit code, once it exited.
    pub exit: Option<i32>,
    /// Whether it ignores SIGTERM (a stop then ends in SIGKILL).
    pub ignores_term: bool,
}

#[derive(Default)]
struct FakeProcesses {
    next_pid: i32,
    processes: Vec<FakeProcess>,
    fail_spawn: Option<String>,
    ignore_term: bool,
    signals: Vec<(i32, i32)>,
}

/// A [`Runtime`] of pretend processes: spawned ones "run" until they are
/// signalled or told to exit ([`FakeRuntime::exit`]); waits block on a
/// condition variable, so watcher threads behave as with real processes.
#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<FakeProcesses>,
    exited: Condvar,
}

impl FakeRuntime {
    /// A runtime with no processes.
    pub fn new() -> Self {
        let runtime = Self::default();
        runtime.state.lock().unwrap().next_pid = 1000;
        runtime
    }

    /// Makes the next spawn fail with `message`.
    pub fn fail_next_spawn(&self, message: &str) {
        self.state.lock().unwrap().fail_spawn = Some(message.to_string());
    }

    /// Makes processes spawned from now on ignore SIGTERM.
    pub fn ignore_term(&self, ignore: bool) {
        self.state.lock().unwrap().ignore_term = ignore;
    }

    /// Every process spawned so far.
    pub fn processes(&self) -> Vec<FakeProcess> {
        self.state.lock().unwrap().processes.clone()
    }

    /// The processes that still run.
    pub fn running(&self) -> Vec<FakeProcess> {
        self.processes()
            .into_iter()
            .filter(|p| p.exit.is_none())
            .collect()
    }

    /// The `(pid, signal)` pairs sent so far.
    pub fn signals(&self) -> Vec<(i32, i32)> {
        self.state.lock().unwrap().signals.clone()
    }

    /// Adds a process that runs without having been spawned through this
    /// runtime: a supervisor started by a celld that died before it could
    /// record its pid.
    pub fn adopt(&self, dir: &Path, spec: ProcessSpec) -> FakeProcess {
        let mut state = self.state.lock().unwrap();
        let process = new_process(&mut state, dir, spec);
        state.processes.push(process.clone());
        process
    }

    /// Makes the process with pid `pid` exit with `code` on its own.
    pub fn exit(&self, pid: i32, code: i32) {
        let mut state = self.state.lock().unwrap();
        if let Some(p) = state
            .processes
            .iter_mut()
            .find(|p| p.pid == pid && p.exit.is_none())
        {
            p.exit = Some(code);
        }
        self.exited.notify_all();
    }
}

fn new_process(state: &mut FakeProcesses, dir: &Path, spec: ProcessSpec) -> FakeProcess {
    let shim_pid = state.next_pid;
    state.next_pid += 2;
    FakeProcess {
        dir: dir.to_path_buf(),
        spec,
        shim_pid,
        pid: shim_pid + 1,
        exit: None,
        ignores_term: state.ignore_term,
    }
}

impl Runtime for FakeRuntime {
    fn spawn(&self, dir: &Path, spec: &ProcessSpec) -> Result<Started, RuntimeError> {
        let mut state = self.state.lock().unwrap();
        if let Some(message) = state.fail_spawn.take() {
            return Err(RuntimeError::ShimSetup {
                state_dir: dir.to_path_buf(),
                message,
            });
        }
        let process = new_process(&mut state, dir, spec.clone());
        let started = Started {
            shim_pid: process.shim_pid,
            pid: process.pid,
        };
        state.processes.push(process);
        Ok(started)
    }

    fn signal(&self, pid: i32, signal: i32) {
        let mut state = self.state.lock().unwrap();
        state.signals.push((pid, signal));
        if let Some(p) = state
            .processes
            .iter_mut()
            .find(|p| p.pid == pid && p.exit.is_none())
            && (signal == libc::SIGKILL || (signal == libc::SIGTERM && !p.ignores_term))
        {
            p.exit = Some(128 + signal);
        }
        self.exited.notify_all();
    }

    fn wait_for_exit(&self, shim_pid: i32, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.state.lock().unwrap();
        loop {
            let ended = state
                .processes
                .iter()
                .find(|p| p.shim_pid == shim_pid)
                .is_none_or(|p| p.exit.is_some());
            if ended {
                return true;
            }
            state = match deadline {
                None => self.exited.wait(state).unwrap(),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.exited.wait_timeout(state, left).unwrap().0
                }
            };
        }
    }

    fn is_supervising(&self, shim_pid: i32, dir: &Path) -> bool {
        self.state
            .lock()
            .unwrap()
            .processes
            .iter()
            .any(|p| p.shim_pid == shim_pid && p.dir == dir && p.exit.is_none())
    }

    fn find_supervisor(&self, dir: &Path) -> Option<i32> {
        self.state
            .lock()
            .unwrap()
            .processes
            .iter()
            .find(|p| p.dir == dir && p.exit.is_none())
            .map(|p| p.shim_pid)
    }

    fn kill_supervised(&self, shim_pid: i32) {
        let pid = self
            .state
            .lock()
            .unwrap()
            .processes
            .iter()
            .find(|p| p.shim_pid == shim_pid)
            .map(|p| p.pid);
        if let Some(pid) = pid {
            self.signal(pid, libc::SIGKILL);
        }
    }

    fn exit_code(&self, dir: &Path) -> Option<i32> {
        self.state
            .lock()
            .unwrap()
            .processes
            .iter()
            .rev()
            .find(|p| p.dir == dir)
            .and_then(|p| p.exit)
    }
}
