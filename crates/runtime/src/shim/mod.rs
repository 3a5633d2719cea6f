//! The per-process supervisor ("shim") and the call that starts it.
//!
//! Every process cell runs in a container, its init or an exec, runs under
//! its own shim: `celld` re-executed as `celld shim STATE_DIR`. The shim is
//! detached from `celld` (own session, reparented away from it), so `celld`
//! can stop, crash or restart without killing or losing containers.
//!
//! One module per job:
//!
//! - [`spawn`]: how `celld` starts a shim and waits until it is ready
//!   ([`spawn_shim`]).
//! - [`supervisor`]: the shim itself ([`shim_main`]): the output log, the
//!   exit record, signals, and the container process's lifetime.
//! - [`attach`]: the attach socket protocol.
//! - [`log`]: the output log on disk, bounded by rotation, with a time
//!   index, and its reader for `cell logs`.
//! - [`init`]: the child side: namespaces, rootfs, capabilities, exec. Every
//!   kernel call there goes through [`crate::syscall::Syscalls`].
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
//! - **shim → readers, the state directory.** `shim.pid` holds the shim's
//!   pid, written before anything else, so the shim can be found even if
//!   `celld` died before it heard of it ([`crate::process::find_shim`]).
//!   `output.log` holds the framed output ([`cell_core::frame`]), rotated
//!   to `output.log.1`... at the spec's size cap, each file with a time
//!   index beside it ([`log`]); `attach.sock` streams what is kept, oldest
//!   first, and then live (and takes stdin, end-of-input and resize frames
//!   the other way, see [`attach`]);
//!   `exit.json` holds the exit code. On exit the shim unlinks `attach.sock`
//!   first and writes `exit.json` last, so a reader either gets the complete
//!   stream from the socket or, when connecting fails, finds the complete log
//!   once `exit.json` exists.
//!
//! The shim is single-threaded (it forks) and uses `poll(2)`, not an async
//! runtime.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

pub mod attach;
pub(crate) mod init;
pub mod log;
pub mod spawn;
pub mod supervisor;

pub use attach::attach_path;
pub use spawn::{Started, spawn_shim};
pub use supervisor::shim_main;

const SPEC_FILE: &str = "spec.json";
const EXIT_FILE: &str = "exit.json";
const OUTPUT_LOG: &str = "output.log";
const SHIM_LOG: &str = "shim.log";
const PID_FILE: &str = "shim.pid";

#[derive(Debug, Serialize, Deserialize)]
struct ExitRecord {
    exit_code: i32,
}

/// The file in which the shim of `state_dir` records its own pid.
pub fn pid_path(state_dir: &Path) -> PathBuf {
    state_dir.join(PID_FILE)
}

/// The exit code, once the process has exited and its output is complete.
pub fn read_exit(state_dir: &Path) -> Option<i32> {
    let text = fs::read(state_dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice::<ExitRecord>(&text)
        .ok()
        .map(|r| r.exit_code)
}

/// The framed output retained so far (rotated files first); it ends with
/// the exit frame once [`read_exit`] returns a code.
pub fn stream_history(state_dir: &Path) -> Result<Vec<u8>> {
    let path = state_dir.join(OUTPUT_LOG);
    let current = fs::read(&path).map_err(|source| RuntimeError::Read { path, source })?;
    let mut stream = Vec::new();
    for rotated in log::segment_paths(state_dir) {
        if rotated != state_dir.join(OUTPUT_LOG) {
            stream.extend(fs::read(&rotated).unwrap_or_default());
        }
    }
    stream.extend(current);
    Ok(stream)
}

/// Writes `bytes` to a temporary file next to `path` and renames it over
/// `path`, so readers see the old contents or the new, never a part.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = |p: &Path| -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(pid_path(tmp.path()), tmp.path().join("shim.pid"));
    }
}
