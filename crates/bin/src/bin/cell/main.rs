//! `cell`: the command line client of celld. Parses arguments, makes one
//! API call per step, prints, and decides the exit code: the process's own
//! for `run` and `exec`, 125 when cell itself failed.

mod args;
mod client;
mod output;

use anyhow::{Result, bail};
use args::{Cli, Command, ContainerCommand, CreateArgs, ImageCommand, NetworkCommand};
use clap::Parser;
use client::Client;
use hyper::Method;
use serde_json::{Value, json};

/// Exit code when cell itself failed (Docker's convention), so that it is
/// told apart from a container's exit code.
const CELL_FAILED: i32 = 125;

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        match run(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e:#}");
                CELL_FAILED
            }
        }
    });
    std::process::exit(code);
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

async fn run(cli: Cli) -> Result<i32> {
    let client = &Client::new(&cli.host)?;
    match cli.command {
        Command::Image(cmd) => image(client, cmd).await,
        Command::Network(NetworkCommand::Inspect { network }) => {
            print_json(
                &client
                    .call(Method::GET, &format!("/networks/{}", seg(&network)), None)
                    .await?,
            );
            Ok(0)
        }
        Command::Container(ContainerCommand::Inspect { container }) | Command::Inspect { container } => {
            print_json(
                &client
                    .call(Method::GET, &format!("/containers/{}", seg(&container)), None)
                    .await?,
            );
            Ok(0)
        }
        Command::Container(ContainerCommand::Prune) => {
            let out = client.call(Method::DELETE, "/containers", None).await?;
            for id in out["removed"].as_array().into_iter().flatten() {
                println!("{}", id.as_str().unwrap_or_default());
            }
            Ok(0)
        }
        Command::Container(ContainerCommand::Ls { all }) | Command::Lsc { all } => {
            let containers = client
                .call(Method::GET, &format!("/containers?all={all}"), None)
                .await?;
            let images = client.call(Method::GET, "/images", None).await?;
            let (c, i) = (
                containers.as_array().cloned().unwrap_or_default(),
                images.as_array().cloned().unwrap_or_default(),
            );
            println!("{}", output::containers_table(&c, &i, chrono::Utc::now()));
            Ok(0)
        }
        Command::Create(args) => {
            println!("{}", create(client, &args).await?);
            Ok(0)
        }
        Command::Run(args) => {
            let id = create(client, &args.create).await?;
            eprintln!("{id}");
            let exec = client
                .call(Method::POST, &format!("/containers/{id}/start"), None)
                .await?;
            follow(client, &exec, args.detach, |exec_id, code| {
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
        Command::Exec(args) => {
            let body = json!({ "cmd": args.cmd, "env": args.env });
            let exec = client
                .call(
                    Method::POST,
                    &format!("/containers/{}/exec", seg(&args.container)),
                    Some(&body),
                )
                .await?;
            follow(client, &exec, args.detach, |exec_id, code| {
                format!("{exec_id} has exited with exit-code {code}")
            })
            .await
        }
    }
}

/// Announces a started exec as Kleene does; unless `detach`, streams its
/// output and reports its end with `exit_line`, returning its exit code.
async fn follow(
    client: &Client,
    exec: &Value,
    detach: bool,
    exit_line: impl Fn(&str, i32) -> String,
) -> Result<i32> {
    let exec_id = id_of(exec);
    eprintln!("created execution instance {exec_id}");
    if detach {
        return Ok(0);
    }
    let code = client.attach(&exec_id).await?;
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
            eprintln!("{e:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} failed", names.len());
    }
    Ok(0)
}

async fn create(client: &Client, args: &CreateArgs) -> Result<String> {
    let body = json!({
        "image": args.image,
        "name": args.name,
        "cmd": args.cmd,
        "driver": args.driver,
        "networks": args.networks,
        "ports": args.ports,
        "env": args.env,
        "params": args.params,
    });
    let created = client.call(Method::POST, "/containers", Some(&body)).await?;
    Ok(id_of(&created))
}

async fn image(client: &Client, cmd: ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Create { kind: _, name } => {
            let name = name.unwrap_or_else(|| "busybox".into());
            eprintln!("building image {name} from the host's static busybox...");
            let image = client
                .call(Method::POST, "/images", Some(&json!({ "name": name })))
                .await?;
            eprintln!("image {name} created");
            println!("{}", id_of(&image));
        }
        ImageCommand::Import { name, path } => {
            // The daemon resolves paths on its side: send an absolute one.
            let path = std::path::absolute(&path).unwrap_or(path);
            eprintln!("importing image {name} from {}...", path.display());
            let image = client
                .call(
                    Method::POST,
                    "/images",
                    Some(&json!({ "name": name, "path": path })),
                )
                .await?;
            println!("{}", id_of(&image));
        }
        ImageCommand::Ls => {
            let images = client.call(Method::GET, "/images", None).await?;
            println!(
                "{}",
                output::images_table(
                    images.as_array().map(Vec::as_slice).unwrap_or_default(),
                    chrono::Utc::now()
                )
            );
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
