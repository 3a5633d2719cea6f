//! The error type of the runtime layer.
//!
//! Every variant is named after the operation that failed and carries the
//! path, pid or namespace involved; the cause is chained with `#[source]`.
//! Errors raised inside the container process before `exec` cross to the
//! shim as text, made with [`chain_message`], so they read as one sentence.

use std::path::PathBuf;

use nix::errno::Errno;
use thiserror::Error;

/// A failure in the runtime layer.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// A path the caller named does not exist.
    #[error("'{path}' does not exist")]
    NotFound { path: PathBuf },
    /// The destination of an image build or import is already there.
    #[error("'{path}' already exists")]
    DestinationExists { path: PathBuf },
    /// busybox must be static: it runs inside a rootfs that holds no libc.
    #[error("'{path}' is not a statically linked executable")]
    NotStaticExecutable { path: PathBuf },
    /// An import source that is neither a directory nor a tarball.
    #[error("'{path}' is neither a directory nor a .tar, .tar.gz or .tgz file")]
    UnsupportedSource { path: PathBuf },
    /// The imported tree has no shell, so no container could run in it.
    #[error("'{path}' is not a root filesystem: no /bin/sh")]
    NotRootfs { path: PathBuf },
    /// Reading a file or directory failed.
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Creating or writing a file, directory or link failed.
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Renaming a finished tree or file into place failed.
    #[error("failed to rename {from} to {to}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Running a helper program (`busybox --list-full`, `cp -a`) failed.
    #[error("failed to run {program}: {detail}")]
    RunHelper { program: String, detail: String },
    /// An entry of an image (a tarball member or a file of a directory)
    /// that would write outside the image or make a device node; `entry` is
    /// already quoted.
    #[error("refused entry {entry}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    /// Unpacking a tarball failed.
    #[error("failed to unpack {path}")]
    Unpack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A spec file could not be parsed.
    #[error("failed to parse {path}")]
    ParseSpec {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A spec that cannot be run (empty argv).
    #[error("invalid process spec for exec {exec_id}: {reason}")]
    InvalidSpec { exec_id: String, reason: String },
    /// Starting the shim executable failed.
    #[error("failed to start shim {exe}")]
    SpawnShim {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The shim reported that setting up the container process failed.
    #[error("failed to start process in {state_dir}: {message}")]
    ShimSetup { state_dir: PathBuf, message: String },
    /// The shim went away without reporting.
    #[error("shim for {state_dir} exited without reporting: {detail}")]
    ShimVanished { state_dir: PathBuf, detail: String },
    /// A system call without a more specific variant failed.
    #[error("failed to {op}")]
    Sys {
        op: String,
        #[source]
        source: Errno,
    },
    /// Opening a namespace of a running container failed.
    #[error("failed to open namespace {path} of container process {pid}")]
    OpenNamespace {
        pid: i32,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Joining a namespace failed.
    #[error("failed to join {ns} namespace of container process {pid}")]
    JoinNamespace {
        ns: &'static str,
        pid: i32,
        #[source]
        source: Errno,
    },
    /// Mounting a filesystem failed.
    #[error("failed to mount {what} on {target}")]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    /// Changing the root to the container's rootfs failed.
    #[error("failed to pivot root to {path}")]
    PivotRoot {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// Changing a capability set failed; `op` says which change.
    #[error("failed to {op}")]
    Capabilities {
        op: String,
        #[source]
        source: caps::errors::CapsError,
    },
    /// Building or installing the seccomp filter failed.
    #[error("failed to {op}: {reason}")]
    Seccomp {
        /// What was being done.
        op: String,
        /// The cause, as text (seccompiler's errors are not `Clone`).
        reason: String,
    },
}

impl RuntimeError {
    /// Shorthand for [`RuntimeError::Sys`].
    pub(crate) fn sys(op: impl Into<String>, source: Errno) -> Self {
        Self::Sys {
            op: op.into(),
            source,
        }
    }
}

/// The error and its causes as one line, outer to inner, joined by ": ".
pub fn chain_message(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // An errno prints as "EINVAL: Invalid argument"; the name is enough.
        let text = match c.downcast_ref::<Errno>() {
            Some(errno) => format!("{errno:?}"),
            None => text,
        };
        out.push_str(": ");
        out.push_str(&text);
        cause = c.source();
    }
    out
}

/// Result with [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
