//! The per-process supervisor ("shim") and the call that starts it.
//!
//! Every process cell runs in a container, its init or an exec, runs under
//! its own shim: `celld` re-executed as `celld shim STATE_DIR`. The shim is
//! detached from `celld` (own session, reparented away from it), so `celld`
//! can stop, crash or restart without killing or losing containers.
//!
//! # Channel design
//!
//! Three one-directional channels, one per boundary:
//!
//! - **shim → caller, ready pipe.** [`spawn_shim`] passes the write end of a
//!   pipe as fd `CELL_SHIM_READY_FD`. The shim writes one JSON line, either
//!   `{"pid":N,"shim_pid":M}` once the container process has exec'd, or
//!   `{"error":"..."}` if setup failed, then closes it. The caller reads to
//!   end of file, so it also learns of a shim that died without a word.
//! - **container child → shim, error pipe.** A `CLOEXEC` pipe: a successful
//!   `execve` closes it unwritten; a setup failure before `exec` writes the
//!   error chain as text. A failed `exec` itself is not a setup error: the
//!   child prints `cell: CMD: REASON` to its stderr and exits 127 or 126, as
//!   a shell does.
//! - **shim → readers, the state directory.** `output.log` holds the framed
//!   output ([`cell_core::frame`]); `attach.sock` streams that log from the
//!   start and then live; `exit.json` holds the exit code. On exit the shim
//!   unlinks `attach.sock` first and writes `exit.json` last, so a reader
//!   either gets the complete stream from the socket or, when connecting
//!   fails, finds the complete log once `exit.json` exists.
//!
//! The shim is single-threaded (it forks) and uses `poll(2)`, not an async
//! runtime.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use caps::{CapSet, Capability, CapsHashSet};
use cell_core::frame::{self, FrameKind};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, chdir, fork, pipe2, pivot_root, sethostname};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError, chain_message};
use crate::spec::{ProcessSpec, RootfsSpec, Target};

/// The environment variable that carries the ready pipe's fd number.
const READY_FD_ENV: &str = "CELL_SHIM_READY_FD";
const SPEC_FILE: &str = "spec.json";
const EXIT_FILE: &str = "exit.json";
const OUTPUT_LOG: &str = "output.log";
const ATTACH_SOCK: &str = "attach.sock";
const SHIM_LOG: &str = "shim.log";
/// How long the shim keeps trying to deliver the end of the stream to
/// attached clients after the process exited.
const FINAL_FLUSH: Duration = Duration::from_secs(5);
/// Largest read from an output pipe or the log per step.
const CHUNK: usize = 64 * 1024;
/// At exit, how many chunks to take from the pipes: a background process
/// may keep writing forever, and the shim must still finish.
const MAX_DRAIN_CHUNKS: usize = 64;

/// Docker's default capabilities; `NET_RAW` is removed unless raw sockets
/// are allowed, `NET_ADMIN` added for vnet containers.
const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Device nodes bind-mounted from the host into the container's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// A process started under a shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Pid of the shim.
    pub shim_pid: i32,
    /// Host pid of the container process.
    pub pid: i32,
}

/// The line the shim writes on the ready pipe.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum ReadyReport {
    Started { pid: i32, shim_pid: i32 },
    Failed { error: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct ExitRecord {
    exit_code: i32,
}

/// The attach socket of the process whose state is in `state_dir`.
pub fn attach_path(state_dir: &Path) -> PathBuf {
    state_dir.join(ATTACH_SOCK)
}

/// The exit code, once the process has exited and its output is complete.
pub fn read_exit(state_dir: &Path) -> Option<i32> {
    let text = fs::read(state_dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice::<ExitRecord>(&text)
        .ok()
        .map(|r| r.exit_code)
}

/// The framed output written so far; it ends with the exit frame once
/// [`read_exit`] returns a code.
pub fn stream_history(state_dir: &Path) -> Result<Vec<u8>> {
    let path = state_dir.join(OUTPUT_LOG);
    fs::read(&path).map_err(|source| RuntimeError::Read { path, source })
}

/// Writes `bytes` to a temporary file next to `path` and renames it over
/// `path`, so readers see the old contents or the new, never a part.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = |p: &Path| -> io::Result<()> {
        let mut f = File::create(p)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write(&tmp).map_err(|source| RuntimeError::Write {
        path: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, path).map_err(|source| RuntimeError::Rename {
        from: tmp,
        to: path.to_path_buf(),
        source,
    })
}

/// Starts `shim_exe shim STATE_DIR` for `spec` and waits until the
/// container process has exec'd (or setup failed, which is returned as
/// [`RuntimeError::ShimSetup`] with the shim's message).
///
/// Writes `STATE_DIR/spec.json` (creating `state_dir`). Blocks for the
/// duration of the setup; call it off an async executor. The shim is not
/// left as a child of the caller: the process started here forks the real
/// shim and exits, and is reaped before this returns.
pub fn spawn_shim(shim_exe: &Path, state_dir: &Path, spec: &ProcessSpec) -> Result<Started> {
    spec.validate()?;
    fs::create_dir_all(state_dir).map_err(|source| RuntimeError::Write {
        path: state_dir.into(),
        source,
    })?;
    // The shim changes directory to "/", so it needs an absolute path.
    let state_dir = fs::canonicalize(state_dir).map_err(|source| RuntimeError::Read {
        path: state_dir.into(),
        source,
    })?;
    spec.write_to(&state_dir.join(SPEC_FILE))?;

    // The pipe is made CLOEXEC so that concurrent spawns elsewhere in celld
    // do not inherit it; the shim gets it as its stdout, which the spawn
    // sets up without CLOEXEC. Nothing runs between fork and exec, so std
    // spawns with posix_spawn (a vfork) rather than a fork of celld, whose
    // cost grows with its threads and mappings, i.e. with the number of
    // running containers. The shim makes its own session.
    let (ready_read, ready_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::sys("create the shim ready pipe", e))?;
    let mut first = Command::new(shim_exe)
        .arg("shim")
        .arg(&state_dir)
        .env(READY_FD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(ready_write))
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| RuntimeError::SpawnShim {
            exe: shim_exe.into(),
            source,
        })?;

    let mut text = String::new();
    let read = File::from(ready_read).read_to_string(&mut text);
    let status = first.wait();
    let vanished = |detail: String| RuntimeError::ShimVanished {
        state_dir: state_dir.clone(),
        detail,
    };
    if let Err(e) = read {
        return Err(vanished(format!("reading its report failed: {e}")));
    }
    match serde_json::from_str::<ReadyReport>(text.lines().next().unwrap_or_default()) {
        Ok(ReadyReport::Started { pid, shim_pid }) => Ok(Started { shim_pid, pid }),
        Ok(ReadyReport::Failed { error }) => Err(RuntimeError::ShimSetup {
            state_dir,
            message: error,
        }),
        Err(_) => {
            let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            Err(vanished(format!(
                "{status}, see {}",
                state_dir.join(SHIM_LOG).display()
            )))
        }
    }
}

/// The entry point of `celld shim STATE_DIR`. Never returns.
///
/// Must be called before any thread is started: the shim forks.
pub fn shim_main(state_dir: &Path) -> ! {
    // A session of its own: no terminal signals from celld's session. This
    // process is not a group leader (celld spawned it), so setsid works.
    let _ = nix::unistd::setsid();
    let mut ready = take_ready_pipe();
    close_inherited_descriptors(ready.as_ref().map(|f| f.as_raw_fd()));
    let state_dir = fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    redirect_stderr_to_log(&state_dir.join(SHIM_LOG));

    // SAFETY: the shim is single-threaded (see above), so the child may run
    // arbitrary code after fork.
    match unsafe { fork() } {
        // The caller reaps this process; the shim proper is reparented away
        // from the caller, so it neither becomes its zombie nor dies with it.
        // SAFETY: _exit skips destructors that belong to the child now.
        Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Child) => {}
        Err(e) => fail_setup(&mut ready, &state_dir, format!("failed to fork the shim: {e:?}")),
    }
    // The shim must outlive celld, which may be stopped with these signals;
    // SIGPIPE would kill it when an attached client goes away mid-write.
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    // Do not pin the directory celld was started from.
    let _ = chdir("/");

    let mut shim = match start_process(&state_dir) {
        Ok(shim) => shim,
        Err(message) => fail_setup(&mut ready, &state_dir, message),
    };
    let report = ReadyReport::Started {
        pid: shim.child.as_raw(),
        shim_pid: std::process::id() as i32,
    };
    send_report(&mut ready, &report);
    drop(ready);
    eprintln!("shim: started pid {}", shim.child);
    let code = shim.supervise();
    eprintln!("shim: pid {} exited with {code}", shim.child);
    std::process::exit(0)
}

/// The ready pipe inherited from [`spawn_shim`], if any. It arrives as
/// stdout; it is moved above stdio and stdout becomes `/dev/null` again, so
/// that nothing the shim or its container prints can reach the caller.
fn take_ready_pipe() -> Option<File> {
    let inherited: RawFd = std::env::var(READY_FD_ENV).ok()?.parse().ok()?;
    // SAFETY: F_GETFD only inspects the descriptor table.
    if unsafe { libc::fcntl(inherited, libc::F_GETFD) } == -1 {
        return None;
    }
    let fd = if inherited < 3 {
        // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor of the same pipe.
        let moved = unsafe { libc::fcntl(inherited, libc::F_DUPFD_CLOEXEC, 3) };
        if moved == -1 {
            return None;
        }
        if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
            // SAFETY: dup2 onto a stdio descriptor this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), inherited) };
        }
        moved
    } else {
        inherited
    };
    // SAFETY: spawn_shim passed this descriptor to this process alone, and
    // nothing else in the shim refers to it.
    let file = unsafe { File::from_raw_fd(fd) };
    // The container process must not hold the pipe open, or the caller would
    // wait for its end of file as long as the container runs.
    // SAFETY: setting a descriptor flag on a descriptor this process owns.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(file)
}

/// Closes every descriptor above stdio but the ready pipe: whatever celld
/// (or its parent) leaked would otherwise live as long as the container and
/// end up inside it.
fn close_inherited_descriptors(keep: Option<RawFd>) {
    let ranges = match keep {
        Some(fd) => [(3, fd as u32 - 1), (fd as u32 + 1, u32::MAX)],
        None => [(3, u32::MAX), (1, 0)],
    };
    for (first, last) in ranges {
        if first <= last {
            // SAFETY: the shim owns no descriptors yet besides stdio and `keep`,
            // so nothing refers to those being closed.
            unsafe { libc::close_range(first, last, 0) };
        }
    }
}

fn redirect_stderr_to_log(path: &Path) {
    if let Ok(log) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = nix::unistd::dup2_stderr(log.as_fd());
    }
}

fn send_report(ready: &mut Option<File>, report: &ReadyReport) {
    if let Some(pipe) = ready.as_mut() {
        let mut line = serde_json::to_vec(report).expect("a report always serialises");
        line.push(b'\n');
        if let Err(e) = pipe.write_all(&line) {
            eprintln!("shim: failed to report to the caller: {e}");
        }
    }
}

fn fail_setup(ready: &mut Option<File>, state_dir: &Path, message: String) -> ! {
    eprintln!("shim: {message}");
    let _ = fs::remove_file(attach_path(state_dir));
    send_report(ready, &ReadyReport::Failed { error: message });
    std::process::exit(1)
}

/// A connected attach client; it is sent `output.log` from the start, read
/// back from the file, so a slow client costs no memory and never holds up
/// the container.
struct Client {
    socket: UnixStream,
    /// Bytes of `output.log` delivered so far.
    sent: u64,
    /// The client shut down its sending side; only hang-up matters now.
    is_half_closed: bool,
}

/// The running shim: the container process and where its output goes.
struct Shim {
    state_dir: PathBuf,
    child: Pid,
    pidfd: OwnedFd,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    listener: UnixListener,
    log: File,
    log_len: u64,
    clients: Vec<Client>,
}

/// Steps a) to c): reads the spec and starts the container process. Errors
/// are returned as the text reported to the caller.
fn start_process(state_dir: &Path) -> std::result::Result<Shim, String> {
    let text = |e: RuntimeError| chain_message(&e);
    let spec = ProcessSpec::read_from(&state_dir.join(SPEC_FILE)).map_err(text)?;
    spec.validate().map_err(text)?;

    for stale in [EXIT_FILE, ATTACH_SOCK, OUTPUT_LOG] {
        let _ = fs::remove_file(state_dir.join(stale));
    }
    let log_path = state_dir.join(OUTPUT_LOG);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&log_path)
        .map_err(|source| {
            text(RuntimeError::Write {
                path: log_path.clone(),
                source,
            })
        })?;
    // Bound before the caller hears "ready", so it can attach at once.
    let sock = attach_path(state_dir);
    let listener = UnixListener::bind(&sock)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| {
            text(RuntimeError::Write {
                path: sock.clone(),
                source,
            })
        })?;
    let dev_null = File::open("/dev/null").map_err(|source| {
        text(RuntimeError::Read {
            path: "/dev/null".into(),
            source,
        })
    })?;
    let pipe = |what: &str| {
        pipe2(OFlag::O_CLOEXEC).map_err(|e| text(RuntimeError::sys(format!("create {what} pipe"), e)))
    };
    let (stdout_read, stdout_write) = pipe("stdout")?;
    let (stderr_read, stderr_write) = pipe("stderr")?;
    let (error_read, error_write) = pipe("error")?;

    let joined = match &spec.target {
        // Only children of the shim enter the new pid namespace: the first
        // one becomes its init.
        Target::Init { .. } => {
            unshare(CloneFlags::CLONE_NEWPID)
                .map_err(|e| text(RuntimeError::sys("create a pid namespace", e)))?;
            None
        }
        Target::Exec { init_pid } => {
            // All handles first: once we start joining, the container could
            // exit, and a half-joined process is worse than a clear error.
            let ns = ContainerNamespaces::open(*init_pid).map_err(text)?;
            setns(&ns.pid, CloneFlags::CLONE_NEWPID).map_err(|source| {
                text(RuntimeError::JoinNamespace {
                    ns: "pid",
                    pid: *init_pid,
                    source,
                })
            })?;
            Some(ns)
        }
    };

    // SAFETY: the shim is single-threaded, so the child may allocate and run
    // arbitrary code before exec.
    let child = match unsafe { fork() } {
        Err(e) => return Err(text(RuntimeError::sys("fork the container process", e))),
        Ok(ForkResult::Child) => {
            drop((stdout_read, stderr_read, error_read, listener, log));
            let Err(err) = run_container_process(&spec, joined, dev_null, stdout_write, stderr_write);
            let mut error_pipe = File::from(error_write);
            let _ = error_pipe.write_all(chain_message(&err).as_bytes());
            // SAFETY: leave without running the shim's destructors or atexit
            // handlers, which belong to the parent.
            unsafe { libc::_exit(1) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop((stdout_write, stderr_write, error_write, dev_null, joined));

    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    let pidfd = if raw < 0 {
        Err(text(RuntimeError::sys(
            format!("open a pidfd for pid {child}"),
            Errno::last(),
        )))
    } else {
        // SAFETY: the kernel just returned this descriptor to us.
        Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
    };

    // End of file without a message means the exec happened (or failed in a
    // way the process reports itself).
    let mut message = String::new();
    let _ = File::from(error_read).read_to_string(&mut message);
    if !message.is_empty() || pidfd.is_err() {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        return Err(if message.is_empty() {
            pidfd.err().unwrap_or_default()
        } else {
            message
        });
    }
    for fd in [&stdout_read, &stderr_read] {
        set_nonblocking(fd.as_raw_fd());
    }
    let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Shim {
        state_dir: state_dir.to_path_buf(),
        child,
        pidfd: pidfd?,
        stdout: Some(stdout_read),
        stderr: Some(stderr_read),
        listener,
        log,
        log_len,
        clients: Vec::new(),
    })
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: reading and setting status flags of a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Handles on the namespaces of a running container, opened together.
struct ContainerNamespaces {
    pid_of_init: i32,
    ipc: File,
    uts: File,
    net: File,
    pid: File,
    mnt: File,
}

impl ContainerNamespaces {
    fn open(pid: i32) -> Result<Self> {
        let open = |ns: &str| {
            let path = PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
            File::open(&path).map_err(|source| RuntimeError::OpenNamespace { pid, path, source })
        };
        Ok(Self {
            pid_of_init: pid,
            ipc: open("ipc")?,
            uts: open("uts")?,
            net: open("net")?,
            pid: open("pid")?,
            mnt: open("mnt")?,
        })
    }

    /// Joins all but the pid namespace (the shim joined that one for us).
    /// The mount namespace comes last: joining it moves root and cwd to the
    /// container's pivoted root, after which the other handles could no
    /// longer be reopened by path.
    fn join(&self) -> Result<()> {
        for (ns, file, flag) in [
            ("ipc", &self.ipc, CloneFlags::CLONE_NEWIPC),
            ("uts", &self.uts, CloneFlags::CLONE_NEWUTS),
            ("net", &self.net, CloneFlags::CLONE_NEWNET),
            ("mnt", &self.mnt, CloneFlags::CLONE_NEWNS),
        ] {
            setns(file, flag).map_err(|source| RuntimeError::JoinNamespace {
                ns,
                pid: self.pid_of_init,
                source,
            })?;
        }
        Ok(())
    }
}

/// Runs in the forked child: builds its world, then execs. Returns only
/// setup errors; a failed exec ends the process itself.
fn run_container_process(
    spec: &ProcessSpec,
    joined: Option<ContainerNamespaces>,
    dev_null: File,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<Infallible> {
    match (&spec.target, joined) {
        (
            Target::Init {
                rootfs,
                hostname,
                netns,
                files,
            },
            _,
        ) => {
            if let Some(netns) = netns {
                let file = File::open(netns).map_err(|source| RuntimeError::Read {
                    path: netns.clone(),
                    source,
                })?;
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    RuntimeError::sys(format!("join network namespace {}", netns.display()), e)
                })?;
            }
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
                .map_err(|e| RuntimeError::sys("create mount, uts and ipc namespaces", e))?;
            // Nothing mounted for the container may leak back to the host.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|source| RuntimeError::Mount {
                what: "private propagation".into(),
                target: "/".into(),
                source,
            })?;
            mount_rootfs(rootfs)?;
            sethostname(hostname).map_err(|e| RuntimeError::sys(format!("set hostname {hostname}"), e))?;
            enter_rootfs(&rootfs.merged)?;
            // After pivot_root, so a symlink in the image cannot redirect the
            // write to the host.
            write_files(files)?;
        }
        (Target::Exec { .. }, Some(ns)) => ns.join()?,
        (Target::Exec { init_pid }, None) => {
            return Err(RuntimeError::sys(
                format!("join container process {init_pid}"),
                Errno::EINVAL,
            ));
        }
    }
    chdir(spec.cwd.as_str())
        .map_err(|e| RuntimeError::sys(format!("change directory to {}", spec.cwd), e))?;

    nix::unistd::dup2_stdin(&dev_null).map_err(|e| RuntimeError::sys("redirect stdin", e))?;
    nix::unistd::dup2_stdout(&stdout).map_err(|e| RuntimeError::sys("redirect stdout", e))?;
    nix::unistd::dup2_stderr(&stderr).map_err(|e| RuntimeError::sys("redirect stderr", e))?;
    drop((dev_null, stdout, stderr));

    // Ignored dispositions and the mask survive exec; the shim's are not the
    // container's.
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE] {
        // SAFETY: SIG_DFL installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    set_capabilities(spec.keep_net_admin, spec.keep_net_raw)?;
    // Second line of defence after close_inherited_descriptors: nothing but
    // stdio survives the exec, while the error pipe stays usable until then.
    // SAFETY: only sets a descriptor flag, on descriptors of this process.
    unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    exec_command(&spec.args, &spec.env)
}

fn mount_rootfs(rootfs: &RootfsSpec) -> Result<()> {
    for dir in [&rootfs.upper, &rootfs.work, &rootfs.merged] {
        create_dir(dir)?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        rootfs.lower.display(),
        rootfs.upper.display(),
        rootfs.work.display()
    );
    let merged = &rootfs.merged;
    mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| RuntimeError::Mount {
        what: "overlay".into(),
        target: merged.clone(),
        source,
    })?;

    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc = merged.join("proc");
    mount_fs("proc", &proc, hardened, None)?;
    let sys = merged.join("sys");
    match mount_fs("sysfs", &sys, hardened | MsFlags::MS_RDONLY, None) {
        // sysfs can refuse a new instance when the net namespace is shared
        // with the host; the host's view is the right one then anyway.
        Err(RuntimeError::Mount {
            source: Errno::EPERM | Errno::EBUSY,
            ..
        }) => {
            bind_mount(Path::new("/sys"), &sys, MsFlags::MS_REC)?;
            mount(
                None::<&str>,
                &sys,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|source| RuntimeError::Mount {
                what: "read-only /sys".into(),
                target: sys.clone(),
                source,
            })?;
        }
        other => other?,
    }

    let dev = merged.join("dev");
    mount_fs(
        "tmpfs",
        &dev,
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755"),
    )?;
    for name in DEVICES {
        let target = dev.join(name);
        File::create(&target).map_err(|source| RuntimeError::Write {
            path: target.clone(),
            source,
        })?;
        bind_mount(&Path::new("/dev").join(name), &target, MsFlags::empty())?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let path = dev.join(link);
        std::os::unix::fs::symlink(target, &path).map_err(|source| RuntimeError::Write { path, source })?;
    }
    mount_fs(
        "devpts",
        &dev.join("pts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    mount_fs("tmpfs", &dev.join("shm"), hardened, Some("mode=1777"))?;
    Ok(())
}

fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|source| RuntimeError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Mounts a fresh instance of `fstype` on `target`, creating the mount point.
fn mount_fs(fstype: &str, target: &Path, flags: MsFlags, data: Option<&str>) -> Result<()> {
    create_dir(target)?;
    mount(Some(fstype), target, Some(fstype), flags, data).map_err(|source| RuntimeError::Mount {
        what: fstype.into(),
        target: target.to_path_buf(),
        source,
    })
}

fn bind_mount(source_path: &Path, target: &Path, extra: MsFlags) -> Result<()> {
    mount(
        Some(source_path),
        target,
        None::<&str>,
        MsFlags::MS_BIND | extra,
        None::<&str>,
    )
    .map_err(|source| RuntimeError::Mount {
        what: source_path.display().to_string(),
        target: target.to_path_buf(),
        source,
    })
}

/// Makes `merged` the root. pivot_root(".", ".") stacks the old root on top
/// of the new one, so unmounting "." removes the old root and leaves no
/// directory behind in the image (see pivot_root(2), "NOTES").
fn enter_rootfs(merged: &Path) -> Result<()> {
    let fail = |source| RuntimeError::PivotRoot {
        path: merged.to_path_buf(),
        source,
    };
    chdir(merged).map_err(fail)?;
    pivot_root(".", ".").map_err(fail)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(fail)?;
    chdir("/").map_err(fail)
}

fn write_files(files: &[(String, String)]) -> Result<()> {
    for (path, contents) in files {
        let path = Path::new(path);
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(RuntimeError::Write {
                path: path.into(),
                source: io::Error::from(ErrorKind::InvalidInput),
            });
        }
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        fs::write(path, contents).map_err(|source| RuntimeError::Write {
            path: path.into(),
            source,
        })?;
    }
    Ok(())
}

/// Narrows every capability set to Docker's default set (adjusted by the
/// two flags). The bounding set goes first, while CAP_SETPCAP is still in
/// the effective set; the process stays uid 0, so after exec it gets exactly
/// the bounding set.
fn set_capabilities(keep_net_admin: bool, keep_net_raw: bool) -> Result<()> {
    let fail = |source| RuntimeError::Capabilities { source };
    let mut keep: CapsHashSet = DEFAULT_CAPS.into_iter().collect();
    if keep_net_admin {
        keep.insert(Capability::CAP_NET_ADMIN);
    }
    if !keep_net_raw {
        keep.remove(&Capability::CAP_NET_RAW);
    }
    // Only capabilities this kernel knows: dropping others fails with EINVAL.
    let supported = caps::runtime::thread_all_supported();
    for cap in supported.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(fail)?;
    }
    let keep: CapsHashSet = keep.intersection(&supported).copied().collect();
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(fail)?;
    }
    caps::set(None, CapSet::Inheritable, &keep).map_err(fail)?;
    caps::set(None, CapSet::Effective, &keep).map_err(fail)?;
    caps::set(None, CapSet::Permitted, &keep).map_err(fail)
}

/// Executes `args` with `env`, searching `PATH` from `env` in the container
/// (glibc's execvpe would search the shim's own `PATH`). On failure prints
/// `cell: CMD: REASON` to stderr and exits 127 (not found) or 126 (found but
/// not executable), as a shell does.
fn exec_command(args: &[String], env: &[String]) -> ! {
    let command = &args[0];
    let to_c = |s: &String| CString::new(s.as_bytes()).unwrap_or_default();
    let c_args: Vec<CString> = args.iter().map(to_c).collect();
    let c_env: Vec<CString> = env.iter().map(to_c).collect();
    let candidates: Vec<String> = if command.contains('/') {
        vec![command.clone()]
    } else {
        let path = env
            .iter()
            .find_map(|p| p.strip_prefix("PATH="))
            .unwrap_or(cell_core::env::DEFAULT_PATH);
        path.split(':')
            .map(|dir| {
                if dir.is_empty() {
                    command.clone()
                } else {
                    format!("{dir}/{command}")
                }
            })
            .collect()
    };

    let mut seen_denied = false;
    let mut last = Errno::ENOENT;
    for candidate in candidates {
        let Ok(path) = CString::new(candidate) else {
            continue;
        };
        let Err(errno) = nix::unistd::execve(&path, &c_args, &c_env);
        match errno {
            Errno::ENOENT | Errno::ENOTDIR => {}
            Errno::EACCES => seen_denied = true,
            other => {
                last = other;
                break;
            }
        }
    }
    if seen_denied && last == Errno::ENOENT {
        last = Errno::EACCES;
    }
    let (code, reason) = match last {
        Errno::ENOENT => (127, "not found".to_owned()),
        other => (126, other.desc().to_lowercase()),
    };
    let _ = io::stderr().write_all(format!("cell: {command}: {reason}\n").as_bytes());
    // SAFETY: leave without running destructors that belong to the shim.
    unsafe { libc::_exit(code) }
}

impl Shim {
    /// Steps d) and e): relays output until the direct child exits, then
    /// finishes the stream. Returns the exit code.
    fn supervise(&mut self) -> i32 {
        loop {
            let mut slots = Vec::new();
            let mut fds = Vec::new();
            for (slot, fd) in [(Slot::Stdout, &self.stdout), (Slot::Stderr, &self.stderr)] {
                if let Some(fd) = fd {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    slots.push(slot);
                }
            }
            fds.push(PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Child);
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Listener);
            for (i, client) in self.clients.iter().enumerate() {
                let mut events = PollFlags::empty();
                if !client.is_half_closed {
                    events |= PollFlags::POLLIN;
                }
                if client.sent < self.log_len {
                    events |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(client.socket.as_fd(), events));
                slots.push(Slot::Client(i));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("shim: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let ready: Vec<(Slot, PollFlags)> = slots
                .into_iter()
                .zip(fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())))
                .collect();
            drop(fds);

            let mut is_exited = false;
            let mut gone = Vec::new();
            for (slot, revents) in ready {
                if revents.is_empty() {
                    continue;
                }
                match slot {
                    Slot::Stdout => {
                        self.relay(FrameKind::Stdout);
                    }
                    Slot::Stderr => {
                        self.relay(FrameKind::Stderr);
                    }
                    Slot::Child => is_exited = true,
                    Slot::Listener => self.accept_clients(),
                    Slot::Client(i) => {
                        let is_hung_up =
                            revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL);
                        if is_hung_up || (revents.contains(PollFlags::POLLIN) && !self.read_from_client(i)) {
                            gone.push(i);
                        }
                    }
                }
            }
            // Highest index first, so the lower ones stay valid.
            gone.sort_unstable();
            for i in gone.into_iter().rev() {
                self.clients.remove(i);
            }
            self.pump_clients();
            if is_exited {
                return self.finish();
            }
        }
    }

    /// Reads one chunk from a pipe into the log. Returns whether it read data.
    fn relay(&mut self, kind: FrameKind) -> bool {
        let pipe = match kind {
            FrameKind::Stdout => &mut self.stdout,
            _ => &mut self.stderr,
        };
        let Some(fd) = pipe else { return false };
        let mut buf = vec![0u8; CHUNK];
        match nix::unistd::read(&*fd, &mut buf) {
            Ok(0) => {
                *pipe = None;
                false
            }
            Ok(n) => {
                let mut framed = Vec::with_capacity(n + frame::HEADER_LEN);
                frame::encode(kind, &buf[..n], &mut framed);
                self.append_to_log(&framed);
                true
            }
            Err(Errno::EAGAIN | Errno::EINTR) => false,
            Err(e) => {
                eprintln!("shim: reading {kind:?} failed: {e}");
                *pipe = None;
                false
            }
        }
    }

    fn append_to_log(&mut self, framed: &[u8]) {
        match self.log.write_all(framed) {
            Ok(()) => self.log_len += framed.len() as u64,
            // A full disk must not stop the container; the output is lost.
            Err(e) => eprintln!("shim: failed to append to {OUTPUT_LOG}: {e}"),
        }
    }

    fn accept_clients(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((socket, _)) => {
                    if socket.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            socket,
                            sent: 0,
                            is_half_closed: false,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Clients send nothing; reads only detect that one went away. Returns
    /// whether the client stays.
    fn read_from_client(&mut self, i: usize) -> bool {
        let mut scratch = [0u8; 512];
        let client = &mut self.clients[i];
        match client.socket.read(&mut scratch) {
            Ok(0) => {
                client.is_half_closed = true;
                true
            }
            Ok(_) => true,
            Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }

    /// Sends each client as much of the log as its socket takes now.
    fn pump_clients(&mut self) {
        let log_len = self.log_len;
        let log = &self.log;
        self.clients
            .retain_mut(|client| pump_client(log, log_len, client).is_ok());
    }

    /// Step e): the direct child exited; complete the record and the streams.
    fn finish(&mut self) -> i32 {
        let code = match waitpid(self.child, None) {
            Ok(WaitStatus::Exited(_, code)) => code,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            other => {
                eprintln!("shim: unexpected wait result {other:?}");
                -1
            }
        };
        for kind in [FrameKind::Stdout, FrameKind::Stderr] {
            for _ in 0..MAX_DRAIN_CHUNKS {
                if !self.relay(kind) {
                    break;
                }
            }
        }
        // New readers now get ENOENT and go to the log; readers already in
        // the backlog are accepted and served below.
        let _ = fs::remove_file(attach_path(&self.state_dir));
        self.accept_clients();
        self.append_to_log(&frame::exit_frame(code));
        let record =
            serde_json::to_vec(&ExitRecord { exit_code: code }).expect("an exit record always serialises");
        if let Err(e) = write_atomically(&self.state_dir.join(EXIT_FILE), &record) {
            eprintln!("shim: {}", chain_message(&e));
        }

        let deadline = Instant::now() + FINAL_FLUSH;
        let log_len = self.log_len;
        for client in &mut self.clients {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || client.socket.set_nonblocking(false).is_err()
                || client.socket.set_write_timeout(Some(left)).is_err()
            {
                continue;
            }
            let _ = pump_client(&self.log, log_len, client);
        }
        code
    }
}

/// Writes the part of the log a client has not had yet, until its socket
/// would block. An error means the client is gone.
fn pump_client(log: &File, log_len: u64, client: &mut Client) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    while client.sent < log_len {
        let want = ((log_len - client.sent) as usize).min(CHUNK);
        let n = log.read_at(&mut buf[..want], client.sent)?;
        if n == 0 {
            return Err(io::Error::from(ErrorKind::UnexpectedEof));
        }
        match client.socket.write(&buf[..n]) {
            Ok(written) => client.sent += written as u64,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Stdout,
    Stderr,
    Child,
    Listener,
    Client(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reports_parse_both_ways() {
        let ok: ReadyReport = serde_json::from_str(r#"{"pid":5,"shim_pid":4}"#).unwrap();
        assert!(matches!(ok, ReadyReport::Started { pid: 5, shim_pid: 4 }));
        let failed: ReadyReport = serde_json::from_str(r#"{"error":"boom"}"#).unwrap();
        assert!(matches!(failed, ReadyReport::Failed { error } if error == "boom"));
    }

    #[test]
    fn exit_record_and_history_helpers() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read_exit(tmp.path()), None);
        write_atomically(&tmp.path().join(EXIT_FILE), br#"{"exit_code":3}"#).unwrap();
        assert_eq!(read_exit(tmp.path()), Some(3));
        assert!(
            stream_history(tmp.path())
                .unwrap_err()
                .to_string()
                .contains(OUTPUT_LOG)
        );
        assert_eq!(attach_path(tmp.path()), tmp.path().join("attach.sock"));
    }

    #[test]
    fn spawn_refuses_empty_command_before_starting_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = ProcessSpec {
            exec_id: "e".into(),
            container_id: "c".into(),
            args: vec![],
            env: vec![],
            cwd: "/".into(),
            keep_net_admin: false,
            keep_net_raw: false,
            target: Target::Exec { init_pid: 1 },
        };
        let err = spawn_shim(Path::new("/nonexistent"), tmp.path(), &spec).unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidSpec { .. }), "{err}");
    }

    #[test]
    fn missing_shim_executable_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = ProcessSpec {
            exec_id: "e".into(),
            container_id: "c".into(),
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            keep_net_admin: false,
            keep_net_raw: false,
            target: Target::Exec { init_pid: 1 },
        };
        let err = spawn_shim(Path::new("/nonexistent/celld"), tmp.path(), &spec).unwrap_err();
        assert_eq!(err.to_string(), "failed to start shim /nonexistent/celld");
    }
}
