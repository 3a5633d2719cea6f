//! The `cell-cni` binary: reads the call (environment and stdin), runs
//! the operation, and answers as the CNI spec says: a result (ADD,
//! VERSION) or nothing on stdout and exit 0, or the error JSON on stdout
//! and exit 1. Logs go to stderr (`CELL_LOG=debug` for more).

use cell_cni::config::{self, NetConf};
use cell_cni::{CniError, Code, Command, Invocation, ops};
use serde_json::Value;
use std::io::{Read, Write};

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CELL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    let mut input = String::new();
    let (version, outcome) = match std::io::stdin().read_to_string(&mut input) {
        Err(e) => (
            config::SUPPORTED_VERSIONS
                .last()
                .copied()
                .unwrap_or("1.1.0")
                .to_string(),
            Err(CniError::caused(
                Code::Io,
                "failed to read the configuration from stdin",
                &e,
            )),
        ),
        Ok(_) => run(&input),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = match outcome {
        Ok(Some(body)) => {
            writeln!(out, "{body}").ok();
            0
        }
        Ok(None) => 0,
        Err(error) => {
            tracing::error!(code = error.code as u32, details = %error.details, "{}", error.msg);
            writeln!(out, "{}", error.to_json(&version)).ok();
            1
        }
    };
    out.flush().ok();
    std::process::exit(code);
}

/// The version errors are given in, and the operation's outcome.
fn run(input: &str) -> (String, Result<Option<Value>, CniError>) {
    let latest = config::SUPPORTED_VERSIONS.last().copied().unwrap_or("1.1.0");
    let parsed: Result<Value, CniError> = if input.trim().is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_str(input).map_err(|e| {
            CniError::caused(
                Code::Decode,
                format!("failed to decode the configuration: {e}"),
                &e,
            )
        })
    };
    let version = parsed
        .as_ref()
        .ok()
        .and_then(config::version_of)
        .unwrap_or(latest)
        .to_string();
    let outcome = parsed.and_then(|config| {
        let inv = Invocation::from_env()?;
        if inv.command == Command::Version {
            return Ok(Some(ops::version(&version)));
        }
        let conf = NetConf::parse(&config)?;
        tracing::debug!(
            command = inv.command.as_str(),
            container = inv.container_id,
            ifname = inv.ifname,
            network = conf.name,
            "call"
        );
        match inv.command {
            Command::Add => ops::add(&inv, &conf).map(Some),
            Command::Del => ops::del(&inv, &conf).map(|()| None),
            Command::Check => ops::check(&inv, &conf).map(|()| None),
            Command::Status => ops::status(&conf).map(|()| None),
            Command::Gc => ops::gc(&conf).map(|()| None),
            Command::Version => unreachable!("answered above"),
        }
    });
    (version, outcome)
}
