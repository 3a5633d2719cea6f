//! The command line of `cell` (see CLI.md), as clap types only.

use clap::{Args, Parser, Subcommand, ValueEnum};
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
        #[command(flatten)]
        output: ListOutput,
    },
    /// Show a container as JSON (alias of `container inspect`).
    Inspect {
        /// Container (name, id or id prefix).
        container: String,
    },
    // Helper H (issue 11): version, info, completions, man pages.
    /// Show the versions of cell and of celld.
    Version {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Show celld's root, socket, pools, counts and the kernel features it found.
    Info {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Print the completion script of a shell: bash, zsh or fish (names of
    /// containers, images and networks are completed from celld).
    Completion {
        /// The shell.
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    /// Write man pages for cell and every subcommand into a directory.
    Man {
        /// The directory (created if missing), e.g. /usr/local/share/man/man1.
        dir: PathBuf,
    },
    /// Print a container's output: stdout to stdout, stderr to stderr.
    Logs(LogsArgs),
    // Issue 8: published ports.
    /// Show a container's published ports, or change them (add, rm).
    Port(PortArgs),
}

/// `cell port CONTAINER` or `cell port add|rm CONTAINER SPEC...`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PortArgs {
    /// Container (name, id or id prefix) whose ports to print, one line each:
    /// HOST_ADDR port HOST_PORT -> CONTAINER_ADDR port CONTAINER_PORT/PROTO.
    #[arg(required = true)]
    pub container: Option<String>,
    #[command(subcommand)]
    pub change: Option<PortCommand>,
}

/// Changes of a container's published ports, running or not.
#[derive(Subcommand)]
pub enum PortCommand {
    /// Publish ports of a container, effective at once; prints each mapping.
    Add {
        /// Container (name, id or id prefix).
        container: String,
        /// [HOST_IP:][HOST_PORT][:CONTAINER_PORT][/tcp|udp], as -p takes.
        #[arg(required = true, value_name = "SPEC")]
        ports: Vec<String>,
    },
    /// Unpublish ports of a container, effective at once; prints each mapping.
    Rm {
        /// Container (name, id or id prefix).
        container: String,
        /// A spec as add takes, or HOST_PORT[/PROTO].
        #[arg(required = true, value_name = "SPEC")]
        ports: Vec<String>,
    },
}

/// How a list is printed.
#[derive(Args)]
pub struct ListOutput {
    /// Output format: table or json (an array of objects; see the README
    /// for the fields).
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print only the ids, one per line.
    #[arg(short, long, conflicts_with = "format")]
    pub quiet: bool,
}

/// The formats of lists.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Columns with a header.
    Table,
    /// A JSON array.
    Json,
}

/// The formats of `version` and `info`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// Lines for people.
    Text,
    /// One JSON object.
    Json,
}

/// `cell logs`.
#[derive(Args)]
pub struct LogsArgs {
    /// Go on printing new output until the container stops (or Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of what was kept (N = 0 or more), or `all`.
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        allow_hyphen_values = true,
        value_parser = parse_tail
    )]
    pub tail: Option<String>,
    /// Prefix each line with the time it was written (RFC 3339, UTC).
    #[arg(short, long)]
    pub timestamps: bool,
    /// Container (name, id or id prefix).
    pub container: String,
}

/// Checks `--tail` here, so a bad value is refused before celld is asked.
fn parse_tail(text: &str) -> Result<String, String> {
    cell_engine::logs::parse_tail(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
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
    Ls(ListOutput),
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
    /// Create a network and print its id.
    Create(NetworkCreateArgs),
    /// List networks.
    Ls(ListOutput),
    /// Show a network as JSON; `host` lists the host-driver containers.
    Inspect {
        /// Network name or id.
        network: String,
    },
    /// Remove networks, disconnecting their containers first; prints each
    /// removed network's id.
    Rm {
        /// Networks (name or id).
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every network no container is connected to; prints their ids.
    Prune,
    /// Connect a container to a network and print the endpoint's id; a
    /// running container gets its address at once.
    Connect {
        /// A fixed IPv4 address instead of the next free one.
        #[arg(long, value_name = "IP")]
        ip: Option<String>,
        /// A fixed IPv6 address instead of the next free one.
        #[arg(long, value_name = "IP")]
        ip6: Option<String>,
        /// Network name or id.
        network: String,
        /// Container (name, id or id prefix).
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Network name or id.
        network: String,
        /// Container (name, id or id prefix).
        container: String,
    },
}

#[derive(Args)]
pub struct NetworkCreateArgs {
    /// The network's type: loopback (routed layer 3: one veth and a /32
    /// per container, no bridge), bridge (a Linux bridge the containers'
    /// veths join) or custom (macvlan children of an existing interface,
    /// given with -i). Default: loopback.
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub net_type: Option<String>,
    /// The network's interface (default: the first free cellN; the bridge
    /// of a bridge network); for a custom network, the existing parent
    /// interface.
    #[arg(short = 'i', long = "interface", value_name = "IFNAME")]
    pub interface: Option<String>,
    /// The IPv4 subnet containers get addresses from.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The IPv6 subnet containers get addresses from.
    #[arg(long, value_name = "CIDR")]
    pub subnet6: Option<String>,
    /// The IPv4 default gateway of vnet containers: auto (the first address
    /// of the subnet), none, or an address. Default: auto on bridge networks.
    #[arg(long = "gw", value_name = "auto|none|IP")]
    pub gateway: Option<String>,
    /// The IPv6 default gateway of vnet containers: auto, none, or an address.
    #[arg(long = "gw6", value_name = "auto|none|IP")]
    pub gateway6: Option<String>,
    /// NAT the network's traffic out through this interface (default: the
    /// interface of the host's default route).
    #[arg(long, value_name = "IFNAME", conflicts_with = "no_nat")]
    pub nat: Option<String>,
    /// Do not NAT the network's traffic.
    #[arg(long)]
    pub no_nat: bool,
    /// Whether containers on the network can reach each other (default: true).
    #[arg(long, value_name = "true|false")]
    pub icc: Option<bool>,
    /// Keep the network's traffic inside it: no way out to other networks
    /// or the outside world.
    #[arg(long)]
    pub internal: bool,
    /// Drop packets a container sends from an address that is not its own
    /// (default: true).
    #[arg(long, value_name = "true|false")]
    pub antispoof: Option<bool>,
    /// The network's name.
    pub name: String,
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
        #[command(flatten)]
        output: ListOutput,
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
    /// A network to join (repeatable; the first one gets --ip/--ip6).
    #[arg(short = 'n', long = "network", value_name = "NETWORK")]
    pub networks: Vec<String>,
    /// A fixed IPv4 address on the first network (default: the next free one).
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// A fixed IPv6 address on the first network (default: the next free one).
    #[arg(long, value_name = "IP")]
    pub ip6: Option<String>,
    /// Publish a port: [HOST_IP:][HOST_PORT][:CONTAINER_PORT][/tcp|udp]
    /// (repeatable). Ranges of equal size (8000-8010:9000-9010); IPv6 hosts
    /// in brackets; an empty or 0 HOST_PORT is chosen by celld (-p :80);
    /// CONTAINER_PORT defaults to HOST_PORT.
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
    pub session: SessionArgs,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL (at most 86400, a day).
    #[arg(
        short = 't',
        long = "time",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(..=cell_core::limits::STOP_TIMEOUT_MAX_SECS)
    )]
    pub time: u64,
    /// Containers (name, id or id prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `-i` and `-t` of `run` and `exec`.
#[derive(Args, Clone, Copy)]
pub struct SessionArgs {
    /// Keep stdin open and send it to the process (EOF closes the
    /// process's stdin).
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal; cell's own stdin must be one (raw
    /// mode while attached; window size followed).
    #[arg(short, long)]
    pub tty: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Start detached: print the exec id and return.
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub session: SessionArgs,
    /// Set an environment variable, KEY=VALUE.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Container (name, id or id prefix).
    pub container: String,
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}
