//! What the engine hands the shim: one [`ProcessSpec`] per process, written
//! as JSON to `STATE_DIR/spec.json` by [`crate::shim::spawn_shim`] and read
//! back by [`crate::shim::shim_main`] in a fresh process.
//!
//! The spec is complete: the engine has already merged the environment and
//! prepared the overlay directories and network namespace, so the shim takes
//! no decisions beyond how to apply it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// One process to run in a container: its init or an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// The id of this execution instance.
    pub exec_id: String,
    /// The container it belongs to.
    pub container_id: String,
    /// argv; `args[0]` is searched in the `PATH` of `env` inside the container.
    pub args: Vec<String>,
    /// The full `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// The working directory inside the container.
    pub cwd: String,
    /// Keep `CAP_NET_ADMIN` (vnet containers configure their own interfaces).
    pub keep_net_admin: bool,
    /// Keep `CAP_NET_RAW` (`allow.raw_sockets`).
    pub keep_net_raw: bool,
    /// Whether this starts a container or joins a running one.
    pub target: Target,
    /// How much of its output the supervisor keeps on disk. Absent in specs
    /// written before logs were bounded.
    #[serde(default)]
    pub log: LogLimits,
    /// Where its standard input comes from and whether it has a terminal.
    /// Absent in specs written before interactive sessions existed.
    #[serde(default)]
    pub stdio: Stdio,
    /// Sockets of this family fail with `EAFNOSUPPORT` (a seccomp filter,
    /// [`crate::seccomp`]): a host-driver container whose stack has one
    /// family only. Absent in specs written before stacks existed.
    #[serde(default)]
    pub refused_socket_family: Option<crate::seccomp::SocketFamily>,
}

/// How much output a supervisor keeps: `output.log` and its rotated files
/// together hold at most `max_bytes * files` bytes (see
/// [`crate::shim::log`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLimits {
    /// The size at which `output.log` is rotated.
    pub max_bytes: u64,
    /// How many files are kept, `output.log` included.
    pub files: u32,
}

impl LogLimits {
    /// The smallest cap accepted: a few frames must fit in a file.
    pub const MIN_BYTES: u64 = 4096;
    /// The most files accepted.
    pub const MAX_FILES: u32 = 100;

    /// Checks the limits, naming the bad value.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_bytes < Self::MIN_BYTES {
            return Err(format!(
                "invalid log_max_bytes {}: at least {} is needed",
                self.max_bytes,
                Self::MIN_BYTES
            ));
        }
        if !(1..=Self::MAX_FILES).contains(&self.files) {
            return Err(format!(
                "invalid log_files {}: expected 1 to {}",
                self.files,
                Self::MAX_FILES
            ));
        }
        Ok(())
    }
}

impl Default for LogLimits {
    /// 10 MiB in two files, at most 20 MiB per process.
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            files: 2,
        }
    }
}

/// How a process's standard streams are set up.
///
/// The default is the non-interactive process: stdin `/dev/null`, stdout
/// and stderr on two pipes. With `stdin`, stdin is a pipe fed from what
/// attached clients send ([`cell_core::frame::FrameKind::Stdin`]). With
/// `tty`, the supervisor opens a pseudo-terminal and keeps its master; the
/// process gets the slave as stdin, stdout, stderr and controlling terminal
/// (output then arrives as stdout frames only, as from a terminal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stdio {
    /// Feed the process's stdin from attached clients.
    #[serde(default)]
    pub stdin: bool,
    /// Give the process a terminal.
    #[serde(default)]
    pub tty: bool,
    /// The terminal's size at start (only with `tty`); `None` leaves the
    /// kernel's 0 x 0 until the first resize.
    #[serde(default)]
    pub window: Option<WindowSize>,
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Where the process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Start a container: new mount, pid, uts and ipc namespaces; the network
    /// namespace at `netns` (a bind-mounted netns file), or the caller's
    /// (host driver) when `None`.
    Init {
        /// The overlay directories.
        rootfs: RootfsSpec,
        /// The container's hostname.
        hostname: String,
        /// The network namespace to join, if any.
        netns: Option<PathBuf>,
        /// `(path inside the container, contents)`, such as `/etc/hosts`,
        /// written after the rootfs is mounted.
        files: Vec<(String, String)>,
    },
    /// Run in a running container whose init has this host pid.
    Exec {
        /// Host pid of the container's init.
        init_pid: i32,
    },
}

/// The overlay that forms a container's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsSpec {
    /// The image rootfs, never written.
    pub lower: PathBuf,
    /// The container's own changes.
    pub upper: PathBuf,
    /// overlayfs scratch space, on the same filesystem as `upper`.
    pub work: PathBuf,
    /// Where the overlay is mounted.
    pub merged: PathBuf,
}

impl ProcessSpec {
    /// Checks what the shim cannot recover from later.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| RuntimeError::InvalidSpec {
            exec_id: self.exec_id.clone(),
            reason: reason.into(),
        };
        if self.args.is_empty() || self.args[0].is_empty() {
            return Err(bad("the command is empty"));
        }
        if self.args.iter().chain(&self.env).any(|s| s.contains('\0')) {
            return Err(bad("an argument or environment variable holds NUL"));
        }
        if !self.cwd.starts_with('/') {
            return Err(bad("the working directory is not absolute"));
        }
        self.log.validate().map_err(|reason| bad(&reason))?;
        Ok(())
    }

    /// Writes the spec to `path` (write a temporary file, then rename, so a
    /// reader never sees half a spec).
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("a process spec always serialises");
        crate::shim::write_atomically(path, &text)
    }

    /// Reads a spec written by [`ProcessSpec::write_to`].
    pub fn read_from(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|source| RuntimeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| RuntimeError::ParseSpec {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn init_spec() -> ProcessSpec {
        ProcessSpec {
            exec_id: "e1".into(),
            container_id: "c1".into(),
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            keep_net_admin: false,
            keep_net_raw: true,
            target: Target::Init {
                rootfs: RootfsSpec {
                    lower: "/img".into(),
                    upper: "/c/upper".into(),
                    work: "/c/work".into(),
                    merged: "/c/merged".into(),
                },
                hostname: "web".into(),
                netns: Some("/run/netns/c1".into()),
                files: vec![("/etc/hosts".into(), "127.0.0.1 localhost\n".into())],
            },
            log: LogLimits::default(),
            stdio: Stdio::default(),
            refused_socket_family: None,
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spec.json");
        for spec in [
            init_spec(),
            ProcessSpec {
                stdio: Stdio {
                    stdin: true,
                    tty: true,
                    window: Some(WindowSize { rows: 24, cols: 80 }),
                },
                ..init_spec()
            },
            ProcessSpec {
                target: Target::Exec { init_pid: 42 },
                ..init_spec()
            },
        ] {
            spec.write_to(&path).unwrap();
            assert_eq!(ProcessSpec::read_from(&path).unwrap(), spec);
        }
    }

    #[test]
    fn a_spec_without_stdio_is_the_non_interactive_one() {
        let mut value = serde_json::to_value(init_spec()).unwrap();
        value.as_object_mut().unwrap().remove("stdio");
        let spec: ProcessSpec = serde_json::from_value(value).unwrap();
        assert_eq!(spec.stdio, Stdio::default());
        assert!(!spec.stdio.stdin && !spec.stdio.tty);
    }

    #[test]
    fn enum_is_externally_tagged() {
        let spec = ProcessSpec {
            target: Target::Exec { init_pid: 7 },
            ..init_spec()
        };
        let value = serde_json::to_value(&spec).unwrap();
        assert_eq!(value["target"], serde_json::json!({"Exec": {"init_pid": 7}}));
        let value = serde_json::to_value(init_spec()).unwrap();
        assert_eq!(value["target"]["Init"]["files"][0][0], "/etc/hosts");
    }

    #[test]
    fn validation_refuses_what_cannot_run() {
        init_spec().validate().unwrap();
        let empty = ProcessSpec {
            args: vec![],
            ..init_spec()
        };
        assert!(
            empty
                .validate()
                .unwrap_err()
                .to_string()
                .contains("the command is empty")
        );
        let relative = ProcessSpec {
            cwd: "tmp".into(),
            ..init_spec()
        };
        assert!(relative.validate().is_err());
    }

    #[test]
    fn log_limits_are_checked_and_default_when_absent() {
        let small = ProcessSpec {
            log: LogLimits {
                max_bytes: 10,
                files: 2,
            },
            ..init_spec()
        };
        assert!(
            small
                .validate()
                .unwrap_err()
                .to_string()
                .contains("log_max_bytes 10")
        );
        let none = ProcessSpec {
            log: LogLimits {
                max_bytes: 1 << 20,
                files: 0,
            },
            ..init_spec()
        };
        assert!(none.validate().unwrap_err().to_string().contains("log_files 0"));
        let mut value = serde_json::to_value(init_spec()).unwrap();
        value.as_object_mut().unwrap().remove("log");
        let old: ProcessSpec = serde_json::from_value(value).unwrap();
        assert_eq!(old.log, LogLimits::default());
    }

    #[test]
    fn unreadable_spec_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spec.json");
        std::fs::write(&path, "{").unwrap();
        let err = ProcessSpec::read_from(&path).unwrap_err();
        assert_eq!(err.to_string(), format!("failed to parse {}", path.display()));
    }
}
