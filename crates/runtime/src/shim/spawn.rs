//! How `celld` starts a shim and waits until it is ready: the caller's side
//! of the ready pipe (see the channel design in [`crate::shim`]).

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use serde::{Deserialize, Serialize};

use super::{SHIM_LOG, SPEC_FILE};
use crate::error::{Result, RuntimeError};
use crate::spec::ProcessSpec;

/// The environment variable that carries the ready pipe's fd number.
pub(super) const READY_FD_ENV: &str = "CELL_SHIM_READY_FD";

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
pub(super) enum ReadyReport {
    Started { pid: i32, shim_pid: i32 },
    Failed { error: String },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Target;

    fn exec_spec(args: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            exec_id: "e".into(),
            container_id: "c".into(),
            args,
            env: vec![],
            cwd: "/".into(),
            keep_net_admin: false,
            keep_net_raw: false,
            target: Target::Exec { init_pid: 1 },
            log: Default::default(),
            stdio: Default::default(),
            refused_socket_family: None,
        }
    }

    #[test]
    fn ready_reports_parse_both_ways() {
        let ok: ReadyReport = serde_json::from_str(r#"{"pid":5,"shim_pid":4}"#).unwrap();
        assert!(matches!(ok, ReadyReport::Started { pid: 5, shim_pid: 4 }));
        let failed: ReadyReport = serde_json::from_str(r#"{"error":"boom"}"#).unwrap();
        assert!(matches!(failed, ReadyReport::Failed { error } if error == "boom"));
    }

    #[test]
    fn spawn_refuses_empty_command_before_starting_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let err = spawn_shim(Path::new("/nonexistent"), tmp.path(), &exec_spec(vec![])).unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidSpec { .. }), "{err}");
    }

    #[test]
    fn missing_shim_executable_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = exec_spec(vec!["true".into()]);
        let err = spawn_shim(Path::new("/nonexistent/celld"), tmp.path(), &spec).unwrap_err();
        assert_eq!(err.to_string(), "failed to start shim /nonexistent/celld");
    }
}
