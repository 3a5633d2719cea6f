//! `cell`: the command line client of celld. Parses arguments, makes one
//! API call per step, prints, and decides the exit code: the process's own
//! for `run` and `exec`, 125 when cell itself failed.

mod args;
mod client;
mod complete;
mod output;
mod progress;
mod terminal;

use anyhow::{Result, bail};
use args::{
    Cli, Command, ContainerCommand, CreateArgs, ImageCommand, ListFormat, ListOutput, NetworkCommand,
    NetworkCreateArgs, PortArgs, PortCommand, SessionArgs, ShowFormat,
};
use cell_core::error::one_line;
use clap::Parser;
use client::Client;
use hyper::Method;
use progress::Progress;
use serde_json::{Value, json};

/// Exit code when cell itself failed (Docker's convention), so that it is
/// told apart from a container's exit code.
const CELL_FAILED: i32 = 125;

fn main() {
    // A shell asking for completions (`COMPLETE=bash cell -- ...`) is
    // answered here, before anything else prints.
    complete::complete_if_asked();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version, asked for or shown for a bare `cell network`,
        // print as clap prints them.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("{}", usage_error_line(e));
            std::process::exit(CELL_FAILED);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        match run(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{}", error_line(&e));
                CELL_FAILED
            }
        }
    });
    std::process::exit(code);
}

/// An error as cell prints it: the chain of causes on one line, with any
/// control character a value brought in escaped.
fn error_line(e: &anyhow::Error) -> String {
    one_line(&format!("{e:#}"))
}

/// clap's error for a bad command line (which clap spreads over several
/// lines with a usage block and a hint) as one line naming the value, as
/// every other error of cell is. `--help` and `--version` never come here.
fn usage_error_line(mut err: clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    if let Some(ContextValue::String(value)) = err.get(ContextKind::InvalidValue) {
        let value = one_line(value);
        err.insert(ContextKind::InvalidValue, ContextValue::String(value));
    }
    let rendered = err.render().to_string();
    let parts: Vec<String> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| {
            let l = l.strip_prefix("error: ").unwrap_or(l);
            match l.strip_prefix("Usage: ") {
                Some(usage) => format!("usage: {usage}"),
                None => l.to_string(),
            }
        })
        .collect();
    // "...were not provided:" reads on into its list; other lines are
    // separate sentences.
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(&part);
    }
    one_line(&line)
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("json"));
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_string()
}

/// Percent-encodes a path segment (names are validated, but user input may
/// hold anything; the daemon then says it does not exist).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The socket path of `-H unix:///PATH`.
fn socket_path(host: &str) -> &str {
    host.strip_prefix("unix://").unwrap_or(host)
}

/// A list the daemon answers with, as its items.
async fn list(client: &Client, path: &str) -> Result<Vec<Value>> {
    let value = client.call(Method::GET, path, None).await?;
    Ok(value.as_array().cloned().unwrap_or_default())
}

/// Prints a list as `--format` and `-q` ask, the table drawn by `table`.
fn print_list(
    items: &[Value],
    output: &ListOutput,
    table: impl Fn(&[Value]) -> String,
    json: fn(&[Value]) -> Value,
) {
    if output.quiet {
        print!("{}", output::ids(items));
        return;
    }
    match output.format {
        ListFormat::Table => println!("{}", table(items)),
        ListFormat::Json => print_json(&json(items)),
    }
}

/// `cell version`: the client's part always; the daemon's, or one line
/// saying it could not be asked (and a failure exit code).
async fn version(client: &Client, format: ShowFormat) -> Result<i32> {
    let mine = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    });
    let daemon = client.call(Method::GET, "/version", None).await;
    let shown = daemon.as_ref().ok();
    match format {
        ShowFormat::Text => print!("{}", output::version_text(&mine, shown)),
        ShowFormat::Json => print_json(&json!({ "client": mine, "daemon": shown })),
    }
    match daemon {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("{}", error_line(&e));
            Ok(CELL_FAILED)
        }
    }
}

async fn run(cli: Cli) -> Result<i32> {
    let client = &Client::new(&cli.host)?;
    match cli.command {
        Command::Image(cmd) => image(client, cmd).await,
        Command::Network(cmd) => network(client, cmd).await,
        Command::Container(ContainerCommand::Inspect { container }) | Command::Inspect { container } => {
            print_json(
                &client
                    .call(Method::GET, &format!("/containers/{}", seg(&container)), None)
                    .await?,
            );
            Ok(0)
        }
        Command::Container(ContainerCommand::Prune) => prune_containers(client).await,
        Command::Container(ContainerCommand::Ls { all, output }) | Command::Lsc { all, output } => {
            let containers = list(client, &format!("/containers?all={all}")).await?;
            if output.quiet {
                print!("{}", output::ids(&containers));
                return Ok(0);
            }
            let images = list(client, "/images").await?;
            match output.format {
                ListFormat::Table => println!(
                    "{}",
                    output::containers_table(&containers, &images, chrono::Utc::now())
                ),
                ListFormat::Json => print_json(&output::containers_json(&containers, &images)),
            }
            Ok(0)
        }
        Command::Version { format } => version(client, format).await,
        Command::Info { format } => {
            let mut info = client.call(Method::GET, "/info", None).await?;
            // The daemon does not know by which path it was reached.
            info["socket"] = json!(socket_path(&cli.host));
            match format {
                ShowFormat::Text => print!("{}", output::info_text(&info)),
                ShowFormat::Json => print_json(&info),
            }
            Ok(0)
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            complete::write_script(&shell, &mut script)?;
            // A closed pipe (`cell completion bash | head`) is not a failure.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            Ok(0)
        }
        Command::Man { dir } => {
            complete::write_man_pages(&dir)?;
            Ok(0)
        }
        Command::Create(args) => {
            println!("{}", create(client, &args).await?);
            Ok(0)
        }
        Command::Run(args) => {
            // Before anything is created: a refused -t leaves nothing behind.
            check_session(args.session, args.detach)?;
            let id = create(client, &args.create).await?;
            // Detached, the id is the result (`id=$(cell run -d ...)`, as
            // with Docker); attached, stdout is the container's own.
            if args.detach {
                println!("{id}");
            } else {
                eprintln!("{id}");
            }
            let stdio = stdio_request(args.session);
            let exec = client
                .call(Method::POST, &format!("/containers/{id}/start"), stdio.as_ref())
                .await?;
            follow(client, &exec, args.detach, args.session, |exec_id, code| {
                format!("executable {exec_id} and its container exited with exit-code {code}")
            })
            .await
        }
        Command::Start { containers } => {
            each(&containers, |c| async move {
                let exec = client
                    .call(Method::POST, &format!("/containers/{}/start", seg(&c)), None)
                    .await?;
                println!("{c}");
                eprintln!("created execution instance {}", id_of(&exec));
                Ok(())
            })
            .await
        }
        Command::Stop(args) => {
            each(&args.containers, |c| async move {
                client
                    .call(
                        Method::POST,
                        &format!("/containers/{}/stop?timeout={}", seg(&c), args.time),
                        None,
                    )
                    .await?;
                println!("{c}");
                Ok(())
            })
            .await
        }
        Command::Restart(args) => {
            each(&args.containers, |c| async move {
                let exec = client
                    .call(
                        Method::POST,
                        &format!("/containers/{}/restart?timeout={}", seg(&c), args.time),
                        None,
                    )
                    .await?;
                println!("{c}");
                eprintln!("created execution instance {}", id_of(&exec));
                Ok(())
            })
            .await
        }
        Command::Rm { force, containers } => {
            each(&containers, |c| async move {
                client
                    .call(
                        Method::DELETE,
                        &format!("/containers/{}?force={force}", seg(&c)),
                        None,
                    )
                    .await?;
                println!("{c}");
                Ok(())
            })
            .await
        }
        Command::Port(args) => port(client, args).await,
        Command::Logs(args) => {
            let mut query = vec![
                format!("follow={}", args.follow),
                format!("timestamps={}", args.timestamps),
            ];
            if let Some(tail) = &args.tail {
                query.push(format!("tail={tail}"));
            }
            let path = format!("/containers/{}/logs?{}", seg(&args.container), query.join("&"));
            client.logs(&path).await?;
            Ok(0)
        }
        Command::Exec(args) => {
            check_session(args.session, args.detach)?;
            let mut body = json!({ "cmd": args.cmd, "env": args.env });
            if let (Some(stdio), Some(body)) = (stdio_request(args.session), body.as_object_mut()) {
                body.extend(stdio.as_object().cloned().unwrap_or_default());
            }
            let exec = client
                .call(
                    Method::POST,
                    &format!("/containers/{}/exec", seg(&args.container)),
                    Some(&body),
                )
                .await?;
            follow(client, &exec, args.detach, args.session, |exec_id, code| {
                format!("{exec_id} has exited with exit-code {code}")
            })
            .await
        }
    }
}

/// `-t` attached needs a terminal on our stdin, to read keys from and to
/// take the size of (Docker refuses the same way).
fn check_session(session: SessionArgs, detach: bool) -> Result<()> {
    if session.tty && !detach {
        terminal::require_terminal()?;
    }
    Ok(())
}

/// The stdio part of a start or exec request; `None` for the default
/// (stdin `/dev/null`, no terminal), so such requests stay as they were.
fn stdio_request(session: SessionArgs) -> Option<Value> {
    if !session.interactive && !session.tty {
        return None;
    }
    let window = session
        .tty
        .then(terminal::window_size)
        .flatten()
        .map(|(rows, cols)| json!({ "rows": rows, "cols": cols }));
    Some(json!({ "stdin": session.interactive, "tty": session.tty, "window": window }))
}

/// Announces a started exec as Kleene does; unless `detach`, streams its
/// output (and with `-i`/`-t` its input) and reports its end with
/// `exit_line`, returning its exit code.
async fn follow(
    client: &Client,
    exec: &Value,
    detach: bool,
    session: SessionArgs,
    exit_line: impl Fn(&str, i32) -> String,
) -> Result<i32> {
    let exec_id = id_of(exec);
    eprintln!("created execution instance {exec_id}");
    if detach {
        return Ok(0);
    }
    let code = if session.interactive || session.tty {
        // Raw only when our keys go to the process (as Docker does): with
        // `-t` alone, Ctrl-C must still stop this client. Dropped when the
        // session ends, however it ends, before the last line is printed.
        let _raw = (session.tty && session.interactive)
            .then(terminal::RawMode::enable)
            .transpose()?;
        client
            .attach_interactive(&exec_id, session.interactive, session.tty)
            .await?
    } else {
        client.attach(&exec_id).await?
    };
    eprintln!("{}", exit_line(&exec_id, code));
    Ok(code)
}

/// Runs `f` for each name, reporting every failure and going on; fails at
/// the end if any did.
async fn each<F, Fut>(names: &[String], f: F) -> Result<i32>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if let [name] = names {
        f(name.clone()).await?;
        return Ok(0);
    }
    let mut failed = 0;
    for name in names {
        if let Err(e) = f(name.clone()).await {
            eprintln!("{}", error_line(&e));
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} failed", names.len());
    }
    Ok(0)
}

/// Removes the stopped containers one request each, printing each id as it
/// goes (`DELETE /containers` would answer only once all are gone). One
/// that started again or vanished meanwhile is not prunable any more and is
/// passed over, as the daemon's prune does; any other failure is reported
/// and the rest go on.
async fn prune_containers(client: &Client) -> Result<i32> {
    let containers = client.call(Method::GET, "/containers?all=true", None).await?;
    let stopped: Vec<String> = containers
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["running"] == false)
        .map(id_of)
        .collect();
    let mut failed = 0;
    for id in &stopped {
        let Err(e) = client
            .call(Method::DELETE, &format!("/containers/{id}?force=false"), None)
            .await
        else {
            println!("{id}");
            continue;
        };
        let now = client.call(Method::GET, &format!("/containers/{id}"), None).await;
        let prunable = now.is_ok_and(|c| c["container"]["running"] == false);
        if prunable {
            eprintln!("{}", error_line(&e));
            failed += 1;
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} stopped containers could not be removed",
            stopped.len()
        );
    }
    Ok(0)
}

/// The body of `POST /containers` (the engine's `CreateContainer`).
fn create_body(args: &CreateArgs) -> Value {
    json!({
        "image": args.image,
        "name": args.name,
        "cmd": args.cmd,
        "driver": args.driver,
        "networks": args.networks,
        "ip": args.ip,
        "ip6": args.ip6,
        "ports": args.ports,
        "env": args.env,
        "params": args.params,
    })
}

async fn create(client: &Client, args: &CreateArgs) -> Result<String> {
    let created = client
        .call(Method::POST, "/containers", Some(&create_body(args)))
        .await?;
    Ok(id_of(&created))
}

/// The body of `POST /networks` (the engine's `CreateNetwork`).
fn create_network_body(args: &NetworkCreateArgs) -> Value {
    json!({
        "name": args.name,
        "net_type": args.net_type,
        "interface": args.interface,
        "subnet": args.subnet,
        "subnet6": args.subnet6,
        "gateway": args.gateway,
        "gateway6": args.gateway6,
        "nat": args.nat,
        "no_nat": args.no_nat,
        "icc": args.icc,
        "internal": args.internal,
        "antispoof": args.antispoof,
    })
}

/// `cell port`: the lines of pot's `show`, or a change printed as the
/// mappings it made or removed (`8080:80/tcp`, host ports chosen).
async fn port(client: &Client, args: PortArgs) -> Result<i32> {
    let (container, change) = match args.change {
        None => (args.container.unwrap_or_default(), None),
        Some(PortCommand::Add { container, ports }) => (container, Some(("", ports))),
        Some(PortCommand::Rm { container, ports }) => (container, Some(("/remove", ports))),
    };
    let path = format!("/containers/{}/ports", seg(&container));
    match change {
        None => {
            let lines = client.call(Method::GET, &path, None).await?;
            print!("{}", output::port_lines(&lines));
        }
        Some((verb, ports)) => {
            let body = json!({ "ports": ports });
            let changed = client
                .call(Method::POST, &format!("{path}{verb}"), Some(&body))
                .await?;
            for mapping in changed.as_array().into_iter().flatten() {
                println!("{}", output::port_mapping(mapping));
            }
        }
    }
    Ok(0)
}

async fn network(client: &Client, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Create(args) => {
            let network = client
                .call(Method::POST, "/networks", Some(&create_network_body(&args)))
                .await?;
            println!("{}", id_of(&network));
        }
        NetworkCommand::Ls(output) => {
            let networks = list(client, "/networks").await?;
            print_list(&networks, &output, output::networks_table, output::networks_json);
        }
        NetworkCommand::Inspect { network } => {
            print_json(
                &client
                    .call(Method::GET, &format!("/networks/{}", seg(&network)), None)
                    .await?,
            );
        }
        NetworkCommand::Rm { networks } => {
            return each(&networks, |n| async move {
                let removed = client
                    .call(Method::DELETE, &format!("/networks/{}", seg(&n)), None)
                    .await?;
                println!("{}", id_of(&removed));
                Ok(())
            })
            .await;
        }
        NetworkCommand::Prune => {
            let out = client.call(Method::DELETE, "/networks", None).await?;
            for id in out["removed"].as_array().into_iter().flatten() {
                println!("{}", id.as_str().unwrap_or_default());
            }
        }
        NetworkCommand::Connect {
            ip,
            ip6,
            network,
            container,
        } => {
            let body = json!({ "container": container, "ip": ip, "ip6": ip6 });
            let endpoint = client
                .call(
                    Method::POST,
                    &format!("/networks/{}/connect", seg(&network)),
                    Some(&body),
                )
                .await?;
            println!("{}", id_of(&endpoint));
        }
        NetworkCommand::Disconnect { network, container } => {
            client
                .call(
                    Method::POST,
                    &format!("/networks/{}/disconnect", seg(&network)),
                    Some(&json!({ "container": container })),
                )
                .await?;
        }
    }
    Ok(0)
}

async fn image(client: &Client, cmd: ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Create { kind: _, name } => {
            let name = name.unwrap_or_else(|| "busybox".into());
            let progress = Progress::start(format!("building image {name} from the host's static busybox"));
            let image = client
                .call(Method::POST, "/images", Some(&json!({ "name": name })))
                .await?;
            progress.finish(&format!("image {name} created"));
            println!("{}", id_of(&image));
        }
        ImageCommand::Import { name, path } => {
            // The daemon resolves paths on its side: send an absolute one.
            let path = std::path::absolute(&path).unwrap_or(path);
            // A tarball's size tells how long to expect; a tree's would
            // need a walk of its own.
            let size = std::fs::metadata(&path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| format!(" ({})", indicatif::HumanBytes(m.len())))
                .unwrap_or_default();
            let progress = Progress::start(format!("importing image {name} from {}{size}", path.display()));
            let image = client
                .call(
                    Method::POST,
                    "/images",
                    Some(&json!({ "name": name, "path": path })),
                )
                .await?;
            progress.finish(&format!("image {name} imported"));
            println!("{}", id_of(&image));
        }
        ImageCommand::Ls(output) => {
            let images = list(client, "/images").await?;
            let table = |images: &[Value]| output::images_table(images, chrono::Utc::now());
            print_list(&images, &output, table, output::images_json);
        }
        ImageCommand::Inspect { image } => {
            print_json(
                &client
                    .call(Method::GET, &format!("/images/{}", seg(&image)), None)
                    .await?,
            );
        }
        ImageCommand::Rm { image } => {
            let removed = client
                .call(Method::DELETE, &format!("/images/{}", seg(&image)), None)
                .await?;
            println!("{}", id_of(&removed));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cell_engine::containers::CreateContainer;
    use cell_engine::networks::CreateNetwork;
    use clap::CommandFactory;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    /// The body the CLI sends, read back as the engine reads it.
    fn network_request(line: &str) -> CreateNetwork {
        let Command::Network(NetworkCommand::Create(args)) = parse(line).unwrap().command else {
            panic!("not a network create: {line}");
        };
        serde_json::from_value(create_network_body(&args)).unwrap()
    }

    #[test]
    fn the_command_line_is_consistent_and_every_flag_is_described() {
        Cli::command().debug_assert();
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} {id} has no help");
            }
            for sub in cmd.get_subcommands() {
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no about",
                    sub.get_name()
                );
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "cell");
    }

    #[test]
    fn network_create_sends_the_flags_as_a_create_network() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            network_request("cell network create -t bridge --subnet 10.0.0.0/24 --no-nat --icc false x"),
            CreateNetwork {
                name: "x".into(),
                net_type: some("bridge"),
                subnet: some("10.0.0.0/24"),
                no_nat: true,
                icc: Some(false),
                ..Default::default()
            }
        );
        assert_eq!(
            network_request("cell network create --subnet 10.2.3.0/24 testnet"),
            CreateNetwork {
                name: "testnet".into(),
                subnet: some("10.2.3.0/24"),
                ..Default::default()
            }
        );
        assert_eq!(
            network_request(
                "cell network create -t custom -i eth9 --subnet6 fd00::/64 --gw none --gw6 fd00::1 \
                 --nat eth0 --internal --antispoof false --icc true y",
            ),
            CreateNetwork {
                name: "y".into(),
                net_type: some("custom"),
                interface: some("eth9"),
                subnet: None,
                subnet6: some("fd00::/64"),
                gateway: some("none"),
                gateway6: some("fd00::1"),
                nat: some("eth0"),
                no_nat: false,
                icc: Some(true),
                internal: true,
                antispoof: Some(false),
            }
        );
    }

    #[test]
    fn network_create_rejects_bad_flags() {
        for line in [
            "cell network create --nat eth0 --no-nat x",
            "cell network create --icc maybe x",
            "cell network create --icc x",
            "cell network create --antispoof yes x",
            "cell network create",
        ] {
            assert!(parse(line).is_err(), "{line} was accepted");
        }
        let Err(err) = parse("cell network create --nat eth0 --no-nat x") else {
            panic!("--nat with --no-nat was accepted");
        };
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    /// The one line `cell` prints for a bad command line.
    fn usage_error(args: &[&str]) -> String {
        let err = Cli::try_parse_from(args).err().expect("refused");
        assert!(err.use_stderr(), "{args:?} is not an error");
        let line = usage_error_line(err);
        assert!(!line.contains('\n'), "{line:?}");
        line
    }

    #[test]
    fn bad_flags_give_one_line_naming_the_value() {
        assert_eq!(
            usage_error(&["cell", "network", "create", "--icc", "maybe", "x"]),
            "invalid value 'maybe' for '--icc <true|false>'; [possible values: true, false]"
        );
        let line = usage_error(&["cell", "stop", "-t", "90000", "web"]);
        assert!(
            line.starts_with("invalid value '90000' for '--time <TIME>': "),
            "{line}"
        );
        let line = usage_error(&["cell", "stop", "-t", "1\n2", "web"]);
        assert!(
            line.starts_with(r"invalid value '1\n2' for '--time <TIME>'"),
            "{line}"
        );
        let line = usage_error(&["cell", "network", "create"]);
        assert_eq!(
            line,
            "the following required arguments were not provided: <NAME>; usage: cell network create <NAME>"
        );
        let line = usage_error(&["cell", "lsc", "--bogus"]);
        assert!(line.contains("'--bogus'"), "{line}");
        // The positive control: help and version are not errors, and print as clap prints them.
        for args in [
            &["cell", "--help"][..],
            &["cell", "--version"],
            &["cell", "network", "create", "--help"],
        ] {
            assert!(!Cli::try_parse_from(args).err().unwrap().use_stderr(), "{args:?}");
        }
        assert!(Cli::try_parse_from(["cell", "stop", "-t", "86400", "web"]).is_ok());
    }

    #[test]
    fn network_subcommands_parse() {
        let Command::Network(NetworkCommand::Connect {
            ip,
            ip6,
            network,
            container,
        }) = parse("cell network connect --ip 10.2.3.9 --ip6 fd00::9 testnet web")
            .unwrap()
            .command
        else {
            panic!("not a connect");
        };
        assert_eq!(ip.as_deref(), Some("10.2.3.9"));
        assert_eq!(ip6.as_deref(), Some("fd00::9"));
        assert_eq!((network.as_str(), container.as_str()), ("testnet", "web"));

        let Command::Network(NetworkCommand::Rm { networks }) =
            parse("cell network rm a b c").unwrap().command
        else {
            panic!("not an rm");
        };
        assert_eq!(networks, ["a", "b", "c"]);
        assert!(parse("cell network rm").is_err());
        assert!(parse("cell network disconnect testnet").is_err());
        assert!(parse("cell network disconnect testnet web").is_ok());
        assert!(parse("cell network ls").is_ok());
        assert!(parse("cell network prune").is_ok());
    }

    #[test]
    fn run_takes_several_networks_and_fixed_addresses() {
        let Command::Run(args) =
            parse("cell run -l vnet -n a --network b --ip 10.0.0.5 --ip6 fd00::5 busybox ip addr")
                .unwrap()
                .command
        else {
            panic!("not a run");
        };
        let req: CreateContainer = serde_json::from_value(create_body(&args.create)).unwrap();
        assert_eq!(req.networks, ["a", "b"]);
        assert_eq!(req.ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(req.ip6.as_deref(), Some("fd00::5"));
        assert_eq!(req.cmd, ["ip", "addr"]);

        let Command::Create(args) = parse("cell create busybox").unwrap().command else {
            panic!("not a create");
        };
        let req: CreateContainer = serde_json::from_value(create_body(&args)).unwrap();
        assert!(req.networks.is_empty());
        assert_eq!((req.ip, req.ip6), (None, None));
    }
}
