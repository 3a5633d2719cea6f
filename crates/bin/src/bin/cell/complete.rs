//! Shell completions and man pages, generated from the clap definitions in
//! [`crate::args`].
//!
//! Completion is clap_complete's dynamic kind: the script `cell completion
//! SHELL` prints only registers a function that runs `COMPLETE=SHELL cell --
//! WORDS...`, and cell itself answers ([`complete_if_asked`], first thing in
//! `main`). So the flags and subcommands offered are always those of the
//! binary installed, and names of containers, images and networks come
//! from celld at the moment of the tab ([`with_name_completion`]): from the
//! socket given with `-H` on the line being completed, else `CELL_HOST`, else
//! the default. When celld cannot be asked, names are simply not offered.

use crate::args::Cli;
use crate::client::Client;
use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{CompleteEnv, Shells};
use hyper::Method;
use std::path::Path;
use std::time::Duration;

/// The environment variable the registered scripts set to ask for
/// completions.
const COMPLETE_VAR: &str = "COMPLETE";

/// How long a tab may wait for celld before offering no names.
const NAMES_TIMEOUT: Duration = Duration::from_secs(2);

/// The socket cell talks to when neither `-H` nor `CELL_HOST` says.
const DEFAULT_HOST: &str = "unix:///run/cell/celld.sock";

/// Answers a completion request and exits, when the shell's script made
/// this run one; returns otherwise. Must run before anything is printed.
pub fn complete_if_asked() {
    CompleteEnv::with_factory(command).var(COMPLETE_VAR).complete();
}

/// The command line with name completion attached.
fn command() -> clap::Command {
    with_name_completion(Cli::command())
}

/// Writes the script that registers cell's completion in `shell`.
pub fn write_script(shell: &str, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let shells = Shells::builtins();
    let completer = shells
        .completer(shell)
        .ok_or_else(|| anyhow::anyhow!("unknown shell '{shell}': expected bash, zsh or fish"))?;
    // The scripts call `cell` by name, so they follow the binary on PATH
    // (an upgrade changes what is completed without a new script).
    completer.write_registration(COMPLETE_VAR, "cell", "cell", "cell", out)?;
    Ok(())
}

/// Writes `cell.1` and one page per subcommand (`cell-network-create.1`...)
/// into `dir`, creating it.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))
}

/// What kind of object an argument names, by the argument's id.
fn kind_of(arg_id: &str) -> Option<&'static str> {
    match arg_id {
        "container" | "containers" => Some("containers?all=true"),
        "image" => Some("images"),
        "network" | "networks" => Some("networks"),
        _ => None,
    }
}

/// `cmd` with every argument naming containers, images or networks (by its
/// id, in every subcommand) completed with the names celld knows.
pub fn with_name_completion(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| match kind_of(arg.get_id().as_str()) {
        Some(list) => arg.add(ArgValueCandidates::new(move || names(list))),
        None => arg,
    })
    .mut_subcommands(with_name_completion)
}

/// The names in celld's list at `path` (`/containers?all=true`...); none if
/// celld cannot be asked in time.
fn names(path: &str) -> Vec<CompletionCandidate> {
    let host = host_from_args(std::env::args())
        .or_else(|| std::env::var("CELL_HOST").ok())
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let Ok(client) = Client::new(&host) else {
        return Vec::new();
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return Vec::new();
    };
    let listed = runtime.block_on(async {
        tokio::time::timeout(NAMES_TIMEOUT, client.call(Method::GET, &format!("/{path}"), None)).await
    });
    let Ok(Ok(list)) = listed else {
        return Vec::new();
    };
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["name"].as_str())
        .map(CompletionCandidate::new)
        .collect()
}

/// The `-H` / `--host` value on the command line being completed.
fn host_from_args(args: impl IntoIterator<Item = String>) -> Option<String> {
    let mut args = args.into_iter();
    let mut host = None;
    while let Some(arg) = args.next() {
        if arg == "-H" || arg == "--host" {
            host = args.next();
        } else if let Some(value) = arg.strip_prefix("--host=") {
            host = Some(value.to_string());
        }
    }
    host.filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_read_from_the_line_being_completed() {
        let line = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            host_from_args(line("cell -- cell -H unix:///tmp/s start x")),
            Some("unix:///tmp/s".into())
        );
        assert_eq!(
            host_from_args(line("cell -- cell --host=unix:///a lsc")),
            Some("unix:///a".into())
        );
        assert_eq!(host_from_args(line("cell -- cell start")), None);
    }

    #[test]
    fn every_argument_naming_an_object_completes_names() {
        fn check(cmd: &clap::Command, found: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if kind_of(arg.get_id().as_str()).is_some() {
                    assert!(
                        arg.get::<ArgValueCandidates>().is_some(),
                        "{} {} has no name completion",
                        cmd.get_name(),
                        arg.get_id()
                    );
                    found.push(format!("{} {}", cmd.get_name(), arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub, found);
            }
        }
        let mut found = Vec::new();
        check(&command(), &mut found);
        for expected in [
            "start containers",
            "exec container",
            "rm image",
            "connect network",
        ] {
            assert!(found.iter().any(|f| f == expected), "{expected} not in {found:?}");
        }
    }

    #[test]
    fn a_man_page_is_written_for_every_subcommand() {
        fn pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
            let name = if prefix.is_empty() {
                cmd.get_name().to_string()
            } else {
                format!("{prefix}-{}", cmd.get_name())
            };
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                pages(sub, &name, out);
            }
            out.push(format!("{name}.1"));
        }
        let mut expected = Vec::new();
        pages(&Cli::command(), "", &mut expected);
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("man1");
        write_man_pages(&into).unwrap();
        for page in &expected {
            let text = std::fs::read_to_string(into.join(page))
                .unwrap_or_else(|e| panic!("{page} not written: {e}"));
            assert!(text.contains(".TH"), "{page} is no man page");
        }
        let written = std::fs::read_dir(&into).unwrap().count();
        assert_eq!(written, expected.len(), "pages: {expected:?}");
        assert!(expected.contains(&"cell-network-create.1".to_string()));
    }
}
