//! `cell-cni`: cell's networks for orchestrators (Kubernetes through
//! containerd or CRI-O, Nomad, podman's CNI backend), as a CNI 1.1 plugin.
//!
//! The plugin runs once per call: the runtime sets `CNI_*` variables
//! ([`Invocation`]) and writes the network's configuration on stdin
//! ([`NetConf`], cell's own keys: `network`, `driver`, `subnet`, `nat`,
//! `icc`, `internal`, `antispoof`...). [`ops`] carries out ADD, DEL,
//! CHECK, STATUS, GC and VERSION with the same drivers and plans as
//! `celld` (the `cell-net` crate), adapted by [`plans`]; [`state`] keeps
//! the leases in SQLite under a lock; [`host`] holds the node's kernel
//! and the plugin's own nftables tables (`inet cell_cni`, `bridge
//! cell_cni`); [`result`] renders results in 0.4.0, 1.0.0 or 1.1.0; and
//! every failure is a [`CniError`] with the spec's code.
//!
//! ```
//! use cell_cni::{NetConf, result::AddResult};
//! let conf = NetConf::parse(&serde_json::json!({
//!     "cniVersion": "1.0.0", "name": "pods", "type": "cell-cni",
//!     "network": "bridge", "subnet": "10.88.0.0/16"})).unwrap();
//! assert_eq!(conf.gateway, Some("10.88.0.1".parse().unwrap()));
//! assert_eq!(AddResult::default().render(&conf.cni_version)["cniVersion"], "1.0.0");
//! ```

#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod host;
pub mod invocation;
pub mod ops;
pub mod plans;
pub mod result;
pub mod state;

pub use config::NetConf;
pub use error::{CniError, Code, Result};
pub use invocation::{Command, Invocation};
