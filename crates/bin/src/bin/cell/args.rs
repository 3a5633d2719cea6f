//! The command line of `cell` (see CLI.md), as clap types only.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cell",
    version,
    about = "cell: containers on Linux namespaces, networked like FreeBSD jails"
)]
pub struct Cli {
    /// The daemon's socket, as unix:///PATH.
    #[arg(
        short = 'H',
        long = "host",
        env = "CELL_HOST",
        default_value = "unix:///run/cell/celld.sock",
        global = true
    )]
    pub host: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Create a container and print its id.
    Create(CreateArgs),
    /// Create and start a container, attached unless -d.
    Run(RunArgs),
    /// Start containers.
    Start {
        /// Containers (name, id or id prefix).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers: SIGTERM, then SIGKILL after the timeout.
    Stop(StopArgs),
    /// Restart containers.
    Restart(StopArgs),
    /// Remove containers.
    Rm {
        /// Kill running containers first.
        #[arg(short, long)]
        force: bool,
        /// Containers (name, id or id prefix).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    #[command(visible_alias = "ps")]
    Lsc {
        /// Show stopped containers too.
        #[arg(short, long)]
        all: bool,
    },
    /// Show a container as JSON (alias of `container inspect`).
    Inspect {
        /// Container (name, id or id prefix).
        container: String,
    },
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build a minimal image from the host's static busybox.
    Create {
        /// What to build the image from; only `busybox` is known.
        #[arg(value_parser = ["busybox"])]
        kind: String,
        /// The image's name (default: busybox).
        name: Option<String>,
    },
    /// Import a root filesystem from a directory or a .tar / .tar.gz.
    Import {
        /// The image's name.
        name: String,
        /// Directory or tarball.
        path: PathBuf,
    },
    /// List images.
    Ls,
    /// Show an image as JSON.
    Inspect {
        /// Image (name, id or id prefix).
        image: String,
    },
    /// Remove an image that no container uses.
    Rm {
        /// Image (name, id or id prefix).
        image: String,
    },
}

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Show a network as JSON; `host` lists the host-driver containers.
    Inspect {
        /// Network name or id.
        network: String,
    },
}

#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Show a container as JSON.
    Inspect {
        /// Container (name, id or id prefix).
        container: String,
    },
    /// Remove every stopped container.
    Prune,
    /// List containers.
    Ls {
        /// Show stopped containers too.
        #[arg(short, long)]
        all: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// The container's name (default: a random adjective_surname).
    #[arg(long)]
    pub name: Option<String>,
    /// Network driver: host, ipnet, vnet or disabled (default: host
    /// without -n, ipnet with -n).
    #[arg(short = 'l', long = "driver")]
    pub driver: Option<String>,
    /// A network to join.
    #[arg(short = 'n', long = "network")]
    pub networks: Vec<String>,
    /// Publish a port: [HOST_IP:]HOST_PORT[:CONTAINER_PORT][/tcp|udp].
    #[arg(short = 'p', long = "publish")]
    pub ports: Vec<String>,
    /// Set an environment variable, KEY=VALUE.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// A jail-style parameter, KEY[=VALUE], e.g. allow.raw_sockets.
    #[arg(short = 'J', long = "param")]
    pub params: Vec<String>,
    /// Image (name, id or id prefix); `busybox` is built when missing.
    pub image: String,
    /// Command and arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Start detached: print the ids and return.
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// Containers (name, id or id prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Start detached: print the exec id and return.
    #[arg(short, long)]
    pub detach: bool,
    /// Set an environment variable, KEY=VALUE.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Container (name, id or id prefix).
    pub container: String,
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}
