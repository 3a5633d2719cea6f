//! `celld`: cell's daemon. Parses flags, claims the network namespace and
//! the root, opens the engine and serves the API on a unix socket.
//! `celld shim STATE_DIR` is the per-process supervisor (the same binary,
//! re-executed by the engine).
//!
//! Two locks, taken before the engine opens (it rebuilds cell's nftables
//! tables): one celld per network namespace, because cell's kernel state
//! (the `inet cell` and `bridge cell` tables, its links) lives there, and one
//! per root, because two daemons on one store would corrupt it.
//!
//! On SIGTERM or SIGINT celld is gone within a second, whoever is attached:
//! attach streams end with an error frame, requests still running get a
//! short grace, and nothing waits for the blocking pool. Containers run under
//! their own supervisors and keep running; an engine call cut off half-way is
//! repaired by the reconciliation of the next start.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The abstract unix socket whose binding makes a celld the owner of its
/// network namespace. Abstract names belong to a network namespace and
/// vanish with the socket, so a crashed daemon leaves no stale lock.
const OWNER_SOCKET_NAME: &[u8] = b"cell-celld";

/// How long requests still running at shutdown may take to answer. Attach
/// streams end at once; this is for short engine calls, and keeps the
/// whole shutdown under a second.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

#[derive(Parser)]
#[command(
    name = "celld",
    version,
    about = "cell's daemon: owns containers, images and networks"
)]
struct Args {
    /// State directory.
    #[arg(long)]
    root: Option<PathBuf>,
    /// The unix socket the API is served on.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// A TOML file with `root`, `socket` and `busybox` keys; flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The static busybox that `cell image create busybox` copies.
    #[arg(long)]
    busybox: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Supervise one process (run by celld itself, not by users).
    #[command(hide = true)]
    Shim { state_dir: PathBuf },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    root: Option<PathBuf>,
    socket: Option<PathBuf>,
    busybox: Option<PathBuf>,
    /// The size at which a process's `output.log` is rotated.
    log_max_bytes: Option<u64>,
    /// How many log files a process keeps, `output.log` included.
    log_files: Option<u32>,
    /// Where automatic host ports of published ports come from
    /// (`FIRST-LAST`); the kernel's ephemeral range when absent.
    port_range: Option<String>,
}

fn main() {
    let args = Args::parse();
    if let Some(Command::Shim { state_dir }) = &args.command {
        // Before any thread exists: the supervisor forks and unshares.
        cell_runtime::shim::shim_main(state_dir);
    }
    // CELL_LOG=debug (any EnvFilter directive) shows, among others, the
    // time each step of an attach takes.
    let filter = tracing_subscriber::EnvFilter::try_from_env("CELL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    if let Err(e) = run(args) {
        eprintln!("celld: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?
        }
        None => Config::default(),
    };
    let root = args
        .root
        .or(config.root)
        .unwrap_or_else(|| "/var/lib/cell".into());
    let socket = args
        .socket
        .or(config.socket)
        .unwrap_or_else(|| "/run/cell/celld.sock".into());
    let busybox = args
        .busybox
        .or(config.busybox)
        .unwrap_or_else(|| "/bin/busybox".into());
    let defaults = cell_runtime::spec::LogLimits::default();
    let log_limits = cell_runtime::spec::LogLimits {
        max_bytes: config.log_max_bytes.unwrap_or(defaults.max_bytes),
        files: config.log_files.unwrap_or(defaults.files),
    };
    log_limits.validate().map_err(anyhow::Error::msg)?;
    let port_range = config
        .port_range
        .as_deref()
        .map(str::parse::<cell_core::port::PortRange>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("invalid config: port_range: {e}"))?;
    // Before anything is created, so a refused daemon leaves no trace.
    let root =
        std::path::absolute(&root).with_context(|| format!("cannot resolve root {}", root.display()))?;
    claim_network_namespace(&root)?;
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create root {}", root.display()))?;
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot resolve root {}", root.display()))?;
    let _lock = lock_root(&root)?;
    // A daemon of another network namespace and root may serve the same
    // path; its socket answers, a stale one does not (and is replaced).
    if UnixStream::connect(&socket).is_ok() {
        bail!("another celld is already serving {}", socket.display());
    }

    let shim_exe = std::env::current_exe().context("cannot find celld's own executable")?;
    let backends =
        cell_engine::Backends::linux(shim_exe).context("cannot open the host's network namespace")?;
    let engine = cell_engine::Engine::open(
        cell_engine::EngineConfig {
            root,
            busybox,
            log_limits,
            port_range,
        },
        backends,
    )?;

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(engine, &socket));
    // Dropping the runtime would wait for every blocking task, such as a
    // `stop -t 30` sitting out its timeout; see the module doc for why
    // leaving them is safe.
    runtime.shutdown_background();
    served
}

/// Makes this celld the owner of its network namespace, or fails naming the
/// daemon that already is. The claim lasts as long as the process: a thread
/// keeps the socket and tells whoever connects the owner's root.
fn claim_network_namespace(root: &Path) -> Result<()> {
    let address = SocketAddr::from_abstract_name(OWNER_SOCKET_NAME)?;
    // An owner that exits between our bind and our connect frees the name:
    // try again then.
    for _ in 0..5 {
        match UnixListener::bind_addr(&address) {
            Ok(listener) => {
                let root = root.to_path_buf();
                std::thread::Builder::new()
                    .name("netns-owner".into())
                    .spawn(move || answer_owner_queries(listener, &root))
                    .context("cannot start the network namespace owner's thread")?;
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match UnixStream::connect_addr(&address) {
                Ok(owner) => return Err(another_owner(owner, root)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e).context("cannot reach the celld that owns this network namespace"),
            },
            Err(e) => return Err(e).context("cannot claim this network namespace for celld"),
        }
    }
    bail!(
        "cannot claim this network namespace for celld: the abstract socket @{} is taken but nobody \
         answers on it",
        String::from_utf8_lossy(OWNER_SOCKET_NAME)
    )
}

/// Tells each daemon that connects to the owner socket this daemon's root.
fn answer_owner_queries(listener: UnixListener, root: &Path) {
    for mut peer in listener.incoming().flatten() {
        let _ = writeln!(peer, "{}", root.display());
    }
}

/// The error that refuses a second daemon, naming the owner by pid (as the
/// kernel reports the socket's creator) and root (as it says itself).
fn another_owner(mut owner: UnixStream, root: &Path) -> anyhow::Error {
    let pid = peer_pid(&owner).map(|pid| format!("pid {pid}"));
    let _ = owner.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = String::new();
    let _ = owner.read_to_string(&mut answer);
    let owner_root = PathBuf::from(answer.trim_end());
    let ours = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if !owner_root.as_os_str().is_empty() && owner_root == ours {
        // The message of the same-root lock below, which this one precedes.
        return anyhow::anyhow!(
            "another celld is already running with root {} ({})",
            ours.display(),
            pid.as_deref().unwrap_or("pid unknown")
        );
    }
    let named: Vec<String> = pid
        .into_iter()
        .chain((!owner_root.as_os_str().is_empty()).then(|| format!("root {}", owner_root.display())))
        .collect();
    let named = if named.is_empty() {
        String::new()
    } else {
        format!(" ({})", named.join(", "))
    };
    anyhow::anyhow!(
        "another celld{named} already owns this network namespace: cell's tables and links there are \
         its own, so only one celld may run in each network namespace"
    )
}

/// The pid of the process that created the socket at the other end, as our
/// pid namespace sees it; `None` if it cannot be seen from here.
fn peer_pid(stream: &UnixStream) -> Option<i32> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `credentials`, a
    // live ucred of that size; the fd is owned by `stream` for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && credentials.pid > 0).then_some(credentials.pid)
}

/// Takes an exclusive lock on the root, so a second celld on the same state
/// refuses to start instead of corrupting it. The lock dies with the process.
fn lock_root(root: &Path) -> Result<File> {
    let path = root.join("celld.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "another celld is already running with root {} (pid {})",
            root.display(),
            holder.trim()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

async fn serve(engine: std::sync::Arc<cell_engine::Engine>, socket: &Path) -> Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Before the socket appears: whoever sees it may signal us at once.
    let mut signals = ShutdownSignals::install()?;
    let listener = listen_at(socket)?;
    tracing::info!(
        "celld listening on {} with root {}",
        socket.display(),
        engine.root().display()
    );
    let shutdown = CancellationToken::new();
    let sessions = cell_api::TaskTracker::new();
    let router = cell_api::router_with_sessions(engine, shutdown.clone(), sessions.clone());
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    let stopped = tokio::select! {
        served = &mut server => served.context("the API server failed"),
        () = signals.recv() => {
            let signalled_at = Instant::now();
            shutdown.cancel();
            // Attach streams end at once; a request still in the engine gets
            // a short grace to answer, then is left to the next start's
            // reconciliation.
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
                tracing::warn!(
                    "requests still running after {} ms were cut off",
                    SHUTDOWN_GRACE.as_millis()
                );
            }
            // Interactive sessions end on the same token, with one frame.
            sessions.close();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, sessions.wait()).await;
            tracing::info!(
                "celld stopped in {} ms; containers keep running",
                signalled_at.elapsed().as_millis()
            );
            Ok(())
        }
    };
    let _ = std::fs::remove_file(socket);
    stopped
}

/// Listens on `socket`, which appears only once it accepts connections and
/// has its mode: binding creates the file before `listen`, and a client
/// that connects in between (one that waits for the file, as scripts and
/// tests do) would be refused. So bind a name of our own, then rename it
/// over the path, replacing a stale socket a killed daemon left there.
fn listen_at(socket: &Path) -> Result<tokio::net::UnixListener> {
    let mut name = socket.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.new", std::process::id()));
    let staging = socket.with_file_name(name);
    let _ = std::fs::remove_file(&staging);
    let listener = tokio::net::UnixListener::bind(&staging)
        .with_context(|| format!("cannot listen on {}", staging.display()))?;
    let published = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", staging.display()))
        .and_then(|()| {
            std::fs::rename(&staging, socket)
                .with_context(|| format!("cannot move {} to {}", staging.display(), socket.display()))
        });
    if let Err(e) = published {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    Ok(listener)
}

/// SIGTERM and SIGINT, either of which stops celld.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
