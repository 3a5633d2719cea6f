//! `celld`: cell's daemon. Parses flags, takes the root's lock, opens the
//! engine and serves the API on a unix socket. `celld shim STATE_DIR` is the
//! per-process supervisor (the same binary, re-executed by the engine).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create root {}", root.display()))?;
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot resolve root {}", root.display()))?;
    let _lock = lock_root(&root)?;

    let shim_exe = std::env::current_exe().context("cannot find celld's own executable")?;
    let backends =
        cell_engine::Backends::linux(shim_exe).context("cannot open the host's network namespace")?;
    let engine = cell_engine::Engine::open(cell_engine::EngineConfig { root, busybox }, backends)?;

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(engine, &socket))
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
    // We hold the root's lock, so a socket file here is a stale one.
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove stale socket {}", socket.display()));
        }
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", socket.display()))?;
    tracing::info!(
        "celld listening on {} with root {}",
        socket.display(),
        engine.root().display()
    );
    axum::serve(listener, cell_api::router(engine))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = std::fs::remove_file(socket);
    tracing::info!("celld stopped; containers keep running");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
