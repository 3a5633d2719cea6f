//! cell-runtime: namespaces, root filesystems, capabilities and the
//! per-process supervisor.
//!
//! - [`image`] builds image root filesystems (a busybox rootfs, or an
//!   imported directory or tarball).
//! - [`spec`] is what the engine hands the supervisor: a [`ProcessSpec`]
//!   saying what to run and whether it starts a container or joins one.
//! - [`shim`] is the supervisor: [`spawn_shim`] starts `celld shim STATE_DIR`,
//!   which runs [`shim_main`], sets up the namespaces and rootfs, execs the
//!   process and records its framed output and exit code in the state
//!   directory, independently of `celld`.
//! - [`syscall`] is the seam under the supervisor's kernel work: the
//!   [`Syscalls`] trait, the real [`LinuxSyscalls`] and the recording
//!   double [`syscall::RecordingSyscalls`].
//! - [`seccomp`] builds the filter that refuses one address family's
//!   sockets to a host-driver container of a single-family stack.
//! - [`process`] lets the engine signal, wait for and find supervisors
//!   through pidfds, immune to pid reuse.
//!
//! This crate knows nothing about networks beyond the path of a network
//! namespace; the `net` layer prepares that namespace first.
//!
//! ```
//! use cell_runtime::spec::{ProcessSpec, Stdio, Target};
//! let spec = ProcessSpec {
//!     exec_id: "e1".into(),
//!     container_id: "c1".into(),
//!     args: vec!["ls".into()],
//!     env: cell_core::env::process_env(&[], &[]),
//!     cwd: "/".into(),
//!     keep_net_admin: false,
//!     keep_net_raw: false,
//!     target: Target::Exec { init_pid: 1234 },
//!     log: Default::default(),
//!     stdio: Stdio::default(),
//!     refused_socket_family: None,
//! };
//! spec.validate().unwrap();
//! ```

pub mod error;
pub mod image;
pub mod process;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod syscall;

pub use error::{Result, RuntimeError};
pub use image::{build_busybox_rootfs, import_rootfs};
pub use shim::{Started, attach_path, read_exit, shim_main, spawn_shim, stream_history};
pub use spec::{ProcessSpec, RootfsSpec, Target};
pub use syscall::{LinuxSyscalls, Syscalls};
